//! Processes seen through /proc, for tests that check nothing outlived them (shared with
//! exec/tests through `#[path]`).

/// The processes whose command line contains `needle` (pid: command line), read from /proc (no
/// procps needed). Tests give their jobs unique arguments (`sleep 1000.<pid>`) so that only
/// their own processes match.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{}: {cmd}", name.to_string_lossy()));
            }
        }
    }
    found
}
