//! `pmdaemon validate <file>`.

use anyhow::Result;

use super::ecosystem;
use crate::cli::ValidateArgs;

/// Checks the file and says what it would start; starts nothing.
pub fn run(args: ValidateArgs) -> Result<()> {
    let loaded = ecosystem::load(&args.file, None)?;
    if args.json {
        println!(
            "{}",
            crate::render::json(&serde_json::json!({
                "file": args.file,
                "valid": true,
                "apps": loaded.apps,
            }))?
        );
        return Ok(());
    }
    let apps: Vec<String> = loaded
        .apps
        .iter()
        .map(|a| {
            format!(
                "{} ({} instance{})",
                a.name,
                a.instances,
                if a.instances == 1 { "" } else { "s" }
            )
        })
        .collect();
    println!("{} is valid: {}", args.file.display(), apps.join(", "));
    Ok(())
}
