use super::*;

/// Serve the store over HTTP, read-only, for people and browsers: `/` lists its wares and
/// names, `/<id>/PATH/` (or `/<name>/PATH/`) a directory with links, a file downloads (with
/// Range requests and a content type from its name), `DIR/?format=tar` streams a directory as
/// a tar. No write endpoint; every path stays inside its ware (no `..`, symlinks shown, never
/// followed). Only wares the store holds whole are served. Runs until interrupted (Ctrl-C).
#[derive(Args)]
pub struct Serve {
    /// Address to listen on. Loopback by default; another address makes the store's contents
    /// readable by whoever can reach it (said in the log).
    #[arg(long, default_value = "127.0.0.1:7750", value_name = "ADDR:PORT")]
    pub listen: String,
}

pub(crate) fn serve(cli: &Cli, a: &Serve) -> Result<()> {
    let store = open(cli, false)?;
    let (read, write) = rustix::pipe::pipe()?;
    let op = ops::Serve {
        listen: a.listen.clone(),
    };
    // The server runs where the store is open and stops once this process (the pipe's
    // reader) is gone; its first line says where it listens.
    let serving = std::thread::spawn(move || {
        let r = store.call(op, &mut Cx::new(Some(write), &ware_store::pack::NoProgress));
        // A server that could not start: unblock the reader below.
        r
    });
    let mut lines = std::io::BufReader::new(std::fs::File::from(read));
    let mut first = String::new();
    use std::io::BufRead;
    if lines.read_line(&mut first)? > 0 {
        let addr = first.trim().trim_start_matches("listening on ").to_string();
        if cli.json {
            print_json(&json!({"listening": addr, "url": format!("http://{addr}/")}))?;
        } else if !cli.quiet {
            eprintln!("serving on http://{addr}/ (read-only); Ctrl-C stops");
        }
        // Hold the pipe until interrupted: the server stops when this process goes.
        let mut rest = String::new();
        while lines.read_line(&mut rest)? > 0 {
            rest.clear();
        }
    }
    match serving.join() {
        Ok(r) => {
            r?;
            Ok(())
        }
        Err(_) => anyhow::bail!("the server thread panicked"),
    }
}
