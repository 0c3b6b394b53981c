//! `pmdaemon init` (`ecosystem`): a commented sample ecosystem file, as
//! `pm2 init` writes one.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The file `init` writes, in the current directory.
const FILE: &str = "ecosystem.config.js";

const SAMPLE: &str = r#"// An ecosystem file, read by pmdaemon as by PM2: `pmdaemon start` in this
// directory starts these apps; `pmdaemon startOrReload ecosystem.config.js`
// applies your changes. Every field: `pmdaemon validate` and the JSON Schema
// in pmdaemon's repository (schema/ecosystem.schema.json).
module.exports = {
  apps: [
    {
      name: 'app',
      script: 'app.js', // run with node (by extension); `interpreter` picks another
      // args: ['--verbose'],
      instances: 1, // a number, 'max' (one per CPU) or -1 (all but one)
      // port: 3000, // one port shared by every instance, or '3000-3003'
      autorestart: true,
      max_memory_restart: '512M',
      // wait_ready: true, // ready once the app calls process.send('ready')
      // health_check: { url: 'http://127.0.0.1:{PORT}/health', interval: 30 },
      env: {
        NODE_ENV: 'development',
      },
      env_production: {
        // `pmdaemon start --env production`
        NODE_ENV: 'production',
      },
    },
  ],
};
"#;

/// Writes the sample, never over an existing file.
pub fn run() -> Result<()> {
    write_sample(Path::new(FILE))?;
    println!("[pmdaemon] wrote {FILE}: edit it, then `pmdaemon start`");
    Ok(())
}

fn write_sample(path: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            if path.exists() {
                format!("{} already exists; it was left as it is", path.display())
            } else {
                format!("cannot create {}", path.display())
            }
        })?;
    file.write_all(SAMPLE.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "mine").unwrap();
        let err = write_sample(&path).unwrap_err();
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    }
}
