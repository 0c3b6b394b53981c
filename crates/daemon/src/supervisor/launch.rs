//! What one launch of an instance needs from the table, gathered in one
//! look: its exec plan (environment, ports, and for a shared-port cluster
//! its part of the port), its name, its app's config and its log paths.

use pmdaemon_core::config::AppConfig;

use super::Supervisor;
use crate::spawn::{self, InstanceEnv, Plan};
use crate::Error;

/// What [`Supervisor::launch_inputs`] gives an instance task.
pub(crate) struct LaunchInputs {
    /// How to run it.
    pub plan: Plan,
    /// The instance's name.
    pub name: String,
    /// Its app's configuration.
    pub config: AppConfig,
    /// Its stdout and stderr log paths.
    pub logs: (std::path::PathBuf, std::path::PathBuf),
    /// The log both streams also go to (`log_file`), if any.
    pub combined: Option<std::path::PathBuf>,
}

impl Supervisor {
    /// Everything one launch of instance `id` needs, read in one look at
    /// the table: its exec plan, name, app config and log paths.
    pub(crate) fn launch_inputs(&self, id: u32) -> Result<LaunchInputs, Error> {
        let (config, inherited, index, name, port, logs, combined) = {
            let table = self.lock();
            let record = table
                .instances
                .get(&id)
                .ok_or_else(|| table.unknown(&id.to_string()))?;
            let app = table
                .app(&record.app)
                .ok_or_else(|| table.unknown(&record.app))?;
            (
                app.config.clone(),
                app.inherited_env.clone(),
                record.index,
                record.name.clone(),
                record.effective_port(),
                table.log_paths(id, &self.home),
                table.combined_log_path(id, &self.home),
            )
        };
        let instance = InstanceEnv {
            index,
            name: &name,
            port,
        };
        let mut plan = spawn::plan(&config, &inherited, &instance)?;
        plan.env.insert(
            "PMDAEMON_HOME".into(),
            self.home.root().display().to_string(),
        );
        self.share_port(&config, &mut plan)?;
        if plan.user.is_some() {
            // What lives in the daemon's home (mode 0700) is out of reach
            // of a process that runs as another user.
            let node = plan.runs_node();
            let unreachable = if config.sharing().is_some() && node {
                Some("a shared port (its Node preload lives in the daemon's private home)")
            } else if config.wait_ready && !node {
                Some("wait_ready (its NOTIFY_SOCKET lives in the daemon's private home; a Node app can use process.send('ready'))")
            } else {
                None
            };
            if let Some(what) = unreachable {
                return Err(Error::UserCannotReach {
                    app: config.name.clone(),
                    what,
                });
            }
        }
        Ok(LaunchInputs {
            plan,
            name,
            config,
            logs,
            combined,
        })
    }

    /// Gives a process of a shared-port cluster its part of the port: the
    /// listening socket as fd 3 (socket mode) or a private `PORT` (proxy
    /// mode), and, for Node, the preload that maps `listen(port)` to it.
    /// The port is bound here if it is not yet (a new daemon).
    fn share_port(&self, config: &AppConfig, plan: &mut Plan) -> Result<(), Error> {
        let Some((port, mode)) = config.sharing() else {
            return Ok(());
        };
        let shared = self.balancer.open(&config.name, port, mode)?;
        let env = &mut plan.env;
        env.insert("PMDAEMON_SHARED_PORT".into(), port.to_string());
        env.insert("PMDAEMON_SHARED_MODE".into(), mode.to_string());
        match mode {
            pmdaemon_core::config::SharedPort::Proxy => {
                let private = crate::balancer::private_port()?;
                env.insert("PORT".into(), private.to_string());
                plan.private_port = Some(private);
            }
            _ => {
                env.insert("LISTEN_FDS".into(), "1".into());
                env.insert("LISTEN_FDNAMES".into(), config.name.clone());
                plan.listen_socket = shared.listener();
            }
        }
        let preload = self.balancer.node_preload(&self.home.root().join("node"))?;
        let require = format!("--require \"{}\"", preload.display());
        let options = match env.get("NODE_OPTIONS") {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {require}"),
            _ => require,
        };
        env.insert("NODE_OPTIONS".into(), options);
        Ok(())
    }
}
