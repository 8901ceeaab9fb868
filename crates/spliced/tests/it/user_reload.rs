//! `--user` and reloads: SIGHUP re-reads `--config` as the user spliced
//! dropped to. A root-only file (0600) is named with a warning at start,
//! and a reload then fails (and changes nothing); a file that user can
//! read gives no warning and reloads. Needs root (to drop to `nobody`);
//! as another user there is nothing to drop, and the test returns.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::util::{self, tag_server, ConfigFile, Proc};
use rustix::process::Signal;

fn config(mode: u32) -> ConfigFile {
    let up = tag_server("A");
    let config = ConfigFile::new(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n"
    ));
    std::fs::set_permissions(&config.path, std::fs::Permissions::from_mode(mode)).unwrap();
    config
}

#[test]
fn a_root_only_config_is_named_at_start_and_a_reload_fails() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let config = config(0o600);
    let mut proc = Proc::spawn(&["run", "--config", config.arg(), "--user", "nobody"]);
    let _ = proc.listen_addr();
    let log = util::eventually("the warning", || {
        let log = proc.stderr();
        log.contains("every reload (SIGHUP) will fail")
            .then_some(log)
    });
    assert!(
        log.contains(&format!("{} cannot be read as user `nobody`", config.arg())),
        "{log}"
    );
    assert!(log.contains("Permission denied"), "{log}");
    proc.signal(Signal::HUP);
    let line = proc.wait_for_line("reload failed");
    assert!(line.contains("Permission denied"), "{line}");
    proc.signal(Signal::TERM);
    assert!(proc.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn a_config_the_user_can_read_reloads() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let config = config(0o644);
    let text = std::fs::read_to_string(&config.path).unwrap();
    let mut proc = Proc::spawn(&["run", "--config", config.arg(), "--user", "nobody"]);
    let _ = proc.listen_addr();
    let line = proc.reload(&config, &text);
    assert!(line.contains("1 listener(s) kept"), "{line}");
    assert!(!proc.stderr().contains("will fail"), "{}", proc.stderr());
    proc.signal(Signal::TERM);
    assert!(proc.wait_exit(Duration::from_secs(10)).success());
}
