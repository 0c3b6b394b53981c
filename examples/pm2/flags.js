// Prints the flags node was given before the script (PM2's node_args).
console.log(JSON.stringify(process.execArgv));
setInterval(() => {}, 1 << 30);
