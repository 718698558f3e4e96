//! `deploy/` passes the functions what they read, under the names they read
//! it by (`sync_config`): each service's memory as
//! `MEMORY_LIMIT_MIB`, equal to its `--memory`, and a schema history mounted
//! where `SCHEMA_HISTORY_FILE` points. Read from `deploy/services.sh
//! --dry-run`, which prints its gcloud commands and calls none.

use anyhow::{ensure, Context, Result};
use std::process::Command;
use sync_config::{MEMORY_LIMIT_MIB, SCHEMA_HISTORY_FILE};

/// The `gcloud run deploy SERVICE` line of a dry run of `deploy/services.sh`
/// with `env`.
fn deploy_line(env: &[(&str, &str)], service: &str) -> Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/services.sh");
    let out = Command::new("bash")
        .args([script, "--dry-run"])
        .env("PROJECT_ID", "deploy-check")
        .env("IMAGE_TAG", "check")
        .envs(env.iter().copied())
        .output()
        .context("running deploy/services.sh")?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(
        out.status.success(),
        "deploy/services.sh --dry-run: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("[dry-run] gcloud run deploy {service} ")))
        .map(str::to_string)
        .with_context(|| format!("no deploy of {service} in:\n{stdout}"))
}

/// The value of `flag` (`--flag=value`) on a printed command line.
fn flag<'a>(line: &'a str, flag: &str) -> Option<&'a str> {
    let prefix = format!("--{flag}=");
    line.split(' ')
        .find_map(|word| word.trim_matches('\'').strip_prefix(prefix.as_str()))
}

/// The environment variables `--set-env-vars` gives.
fn env_vars(line: &str) -> Vec<(String, String)> {
    flag(line, "set-env-vars")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn each_service_gets_its_memory_as_the_functions_memory_limit() -> Result<()> {
    for env in [
        vec![],
        vec![
            ("EXECUTION_ENVIRONMENT", "gen2"),
            ("SYNC_MEMORY_MIB", "512"),
            ("AUDIT_MEMORY_MIB", "768"),
        ],
    ] {
        for service in ["data-sync-processor", "audit-logger"] {
            let line = deploy_line(&env, service)?;
            let memory = flag(&line, "memory").context("--memory")?;
            let vars = env_vars(&line);
            let limit = var(&vars, MEMORY_LIMIT_MIB).context(MEMORY_LIMIT_MIB)?;
            ensure!(
                memory == format!("{limit}Mi"),
                "{service}: --memory={memory}, {MEMORY_LIMIT_MIB}={limit}"
            );
            ensure!(
                flag(&line, "execution-environment").is_some(),
                "{service}: the execution environment is pinned"
            );
        }
    }
    Ok(())
}

#[test]
fn a_schema_history_is_mounted_where_the_functions_read_it() -> Result<()> {
    let dir = std::env::temp_dir().join(sync_testkit::unique_name("deploy-schema"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("history.toml");
    std::fs::write(&file, "current = 1\n")?;
    let path = file.to_string_lossy().into_owned();
    for service in ["data-sync-processor", "audit-logger"] {
        let line = deploy_line(&[("SCHEMA_HISTORY", &path)], service)?;
        let vars = env_vars(&line);
        let read = var(&vars, SCHEMA_HISTORY_FILE).context(SCHEMA_HISTORY_FILE)?;
        let mounted = flag(&line, "set-secrets").context("--set-secrets")?;
        ensure!(
            mounted.starts_with(&format!("{read}=")),
            "{service}: {SCHEMA_HISTORY_FILE}={read}, --set-secrets={mounted}"
        );
        ensure!(
            read.ends_with(".toml"),
            "{service}: the format follows the file"
        );
        let without = deploy_line(&[], service)?;
        ensure!(
            var(&env_vars(&without), SCHEMA_HISTORY_FILE).is_none(),
            "{service}: no {SCHEMA_HISTORY_FILE} without a history"
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
