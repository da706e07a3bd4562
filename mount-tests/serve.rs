//! `ware serve` through the binary, curl and a real browser (headless Chromium, which follows
//! the pages' links to every file): the store's wares as pages with links, files
//! exact (whole and by range), a directory as a tar that unpacks to the same tree; paths that
//! leave the ware, a symlink pointing out and unknown IDs are refused, never a host file; the
//! server stops with the command.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A running `ware serve`, killed when dropped.
struct Serving(Child, String);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(w: &Ware) -> Serving {
    let port = servers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = w
        .command()
        .args(["serve", "--listen", &listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let s = Serving(child, format!("http://{listen}"));
    assert!(
        wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(
            &listen
        )
        .is_ok()),
        "ware serve never listened on {listen}"
    );
    s
}

/// curl `url` with `args`: (HTTP status, body).
fn curl(url: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--path-as-is", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {out:?}");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|&b| b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[nl + 1..]).parse().unwrap();
    body.truncate(nl);
    (code, body)
}

#[test]
fn a_store_is_served_as_pages_files_and_tars_and_nothing_else() {
    let w = Ware::new();
    let src = w.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big = noise(801, 300_000);
    std::fs::write(src.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(src.join("sub/big.bin"), &big).unwrap();
    std::fs::write(src.join("a&<b>.txt"), b"odd name").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("out")).unwrap();
    let id = w.pack(&src);
    w.ok(["name", "set", "site", &id]);
    let s = serve(&w);
    let base = &s.1;

    let (code, index) = curl(&format!("{base}/"), &[]);
    let index = String::from_utf8(index).unwrap();
    assert_eq!(code, 200);
    assert!(
        index.contains("href=\"/site/\"") && index.contains(&format!("href=\"/{id}/\"")),
        "{index}"
    );

    let (code, _) = curl(&format!("{base}/site"), &[]);
    assert_eq!(code, 301, "a directory without its slash is redirected");
    let (code, dir) = curl(&format!("{base}/site/"), &[]);
    let dir = String::from_utf8(dir).unwrap();
    assert_eq!(code, 200);
    assert!(dir.contains("href=\"/site/hello.txt\""), "{dir}");
    assert!(dir.contains("href=\"/site/sub/\""), "{dir}");
    assert!(
        dir.contains("a&amp;&lt;b&gt;.txt") && dir.contains("href=\"/site/a%26%3Cb%3E.txt\""),
        "{dir}"
    );
    assert_eq!(
        curl(&format!("{base}/site/a%26%3Cb%3E.txt"), &[]),
        (200, b"odd name".to_vec())
    );

    assert_eq!(
        curl(&format!("{base}/{id}/sub/big.bin"), &[]),
        (200, big.clone())
    );
    let (code, part) = curl(
        &format!("{base}/site/sub/big.bin"),
        &["-r", "100000-100999"],
    );
    assert_eq!((code, &part[..]), (206, &big[100_000..101_000]));
    assert_eq!(
        curl(&format!("{base}/site/hello.txt"), &["-r", "50-60"]).0,
        416
    );

    // The tree as a tar, unpacked by tar(1): the same files and the symlink as it was.
    let (code, tarball) = curl(&format!("{base}/site/?format=tar"), &[]);
    assert_eq!(code, 200);
    let out = w.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut t = Command::new("tar")
        .args(["-x", "-C", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(t.stdin.as_mut().unwrap(), &tarball).unwrap();
    drop(t.stdin.take());
    assert!(t.wait().unwrap().success());
    assert_eq!(std::fs::read(out.join("sub/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(out.join("hello.txt")).unwrap(),
        b"hello world\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("out")).unwrap(),
        std::path::Path::new("/etc/passwd")
    );

    // Nothing outside the ware, however asked.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().unwrap().to_string();
    for (path, want) in [
        ("/site/../../etc/passwd", 400),
        ("/site/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/site/sub/..%2F..%2Fhello.txt", 400),
        ("/site/out/x", 404),
        ("/etc/passwd", 404),
        (
            "/bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia/",
            404,
        ),
    ] {
        let (code, body) = curl(&format!("{base}{path}"), &[]);
        assert_eq!(code, want, "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains(&first),
            "{path} served a host file"
        );
    }
    let (code, link) = curl(&format!("{base}/site/out"), &[]);
    assert_eq!(code, 200);
    let link = String::from_utf8(link).unwrap();
    assert!(
        link.contains("not followed") && !link.contains(&first),
        "{link}"
    );
    assert_eq!(
        curl(&format!("{base}/site/hello.txt"), &["-X", "POST"]).0,
        405
    );

    // The server goes with the command.
    let addr = base.trim_start_matches("http://").to_string();
    drop(s);
    assert!(
        wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(
            &addr
        )
        .is_err()),
        "still serving after the command ended"
    );
}

/// `ware serve` speaks the warehouse protocol: a fresh store lists what it serves with
/// `ware ls URL`, mounts a ware straight from it by ID (a read fetches only that file's
/// bytes, every file then reads exact) and through the catalog by name, and pulls it whole
/// with nothing failing fsck.
#[test]
fn another_store_mounts_a_ware_straight_from_ware_serve() {
    if !can_mount() {
        return;
    }
    let w = Ware::new();
    let src = w.path("src");
    std::fs::create_dir_all(src.join("lib/deep")).unwrap();
    let big = noise(811, 3 << 20);
    let other = noise(813, 900_000);
    std::fs::write(src.join("lib/big.bin"), &big).unwrap();
    std::fs::write(src.join("lib/deep/other.bin"), &other).unwrap();
    std::fs::write(src.join("small.txt"), b"small\n").unwrap();
    std::os::unix::fs::symlink("lib/big.bin", src.join("link")).unwrap();
    let id = w.pack(&src);
    w.ok(["name", "set", "app", &id]);
    let second = w.pack_files("second", &[("f", &noise(815, 40_000))]);
    let s = serve(&w);
    let url = s.1.clone();

    let fresh = Ware::new();
    let listed: serde_json::Value =
        serde_json::from_str(&fresh.ok(["--json", "ls", &url])).unwrap();
    let text = listed.to_string();
    assert!(
        text.contains(&id) && text.contains(&second) && text.contains("\"app\""),
        "{text}"
    );

    let mnt = fresh.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    fresh.ok(["--warehouse", &url, "mount", &id, m]);
    assert_eq!(
        std::fs::read(mnt.join("lib/deep/other.bin")).unwrap(),
        other
    );
    let (got, f) = fresh.first_mount_fetched();
    assert!(
        got >= other.len() as u64 && got < big.len() as u64,
        "more than the file read was fetched: {f}"
    );
    assert_same(
        &snapshot(&src, false, false, &[]),
        &snapshot(&mnt, false, false, &[]),
    );
    fresh.ok(["umount", m]);

    // The server as a warehouse mount: its wares and names through its catalog.
    fresh.ok(["mount", &url, m]);
    let mut top: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    let mut want = vec![id.clone(), second.clone(), "names".to_string()];
    want.sort();
    assert_eq!(top, want);
    assert_eq!(
        std::fs::read(mnt.join("names/app/lib/big.bin")).unwrap(),
        big
    );
    fresh.ok(["umount", m]);

    let puller = Ware::new();
    puller.ok(["pull", &id, &url]);
    puller.ok(["fsck"]);
    assert_eq!(puller.ok(["cat", &format!("{id}/small.txt")]), "small\n");
}

/// The `href`s of a page, `&amp;` undone, resolved against the page's path (`/a/b/`).
fn hrefs(dom: &str, page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let end = rest.find('"').expect("a closed href");
        let h = rest[..end].replace("&amp;", "&");
        rest = &rest[end..];
        out.push(if h.starts_with('/') {
            h
        } else if let Some(up) = h.strip_prefix("../") {
            let parent = page.trim_end_matches('/').rsplit_once('/').unwrap().0;
            format!("{parent}/{up}")
        } else {
            format!("{page}{h}")
        });
    }
    out
}

fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("a %XX escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The pages as a real browser loads them (headless Chromium): starting at `/`, every link on
/// every page answers, each directory page renders with the entries the tree has, and every
/// file of the tree is reached by links and downloads exactly as packed; a symlink pointing out
/// shows as a page, never the host file.
#[test]
fn a_browser_reaches_every_file_by_links_and_each_downloads_exactly() {
    let Some(browser) = started(servers::Browser::find()) else {
        return;
    };
    let w = Ware::new();
    let src = w.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(src.join("a & <b> c.txt"), b"odd name").unwrap();
    std::fs::write(src.join("sub/big.bin"), noise(811, 200_000)).unwrap();
    std::fs::write(src.join("sub/deeper/x.json"), b"{\"x\": 1}\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("out")).unwrap();
    let id = w.pack(&src);
    w.ok(["name", "set", "site", &id]);
    let s = serve(&w);
    let base = &s.1;
    let first = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = first.lines().next().unwrap().to_string();

    let mut queue = vec!["/".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    let mut files = std::collections::BTreeSet::new();
    let mut pages = 0;
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let (code, body) = curl(&format!("{base}{path}"), &[]);
        assert_eq!(code, 200, "{path}");
        if let Some(dir) = path.strip_suffix("?format=tar") {
            assert!(dir.ends_with('/') && !body.is_empty(), "{path}");
            continue;
        }
        if !path.ends_with('/') {
            // A file (or a symlink's page) of /site/… or /<id>/…: the packed bytes.
            let rel = path.splitn(3, '/').nth(2).unwrap();
            let local = src.join(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&percent_decoded(
                    rel,
                )),
            );
            if local.is_symlink() {
                assert!(!String::from_utf8_lossy(&body).contains(&first), "{path}");
            } else {
                assert_eq!(body, std::fs::read(&local).unwrap(), "{path}");
                files.insert(local);
            }
            continue;
        }
        let dom = browser.dump_dom(&format!("{base}{path}")).unwrap();
        pages += 1;
        assert!(dom.contains("<table"), "{path} did not render: {dom}");
        if path == "/site/" {
            assert!(dom.contains("a &amp; &lt;b&gt; c.txt"), "{dom}");
        }
        queue.extend(hrefs(&dom, &path).into_iter().filter(|h| !seen.contains(h)));
    }
    let mut want = std::collections::BTreeSet::new();
    for f in [
        "hello.txt",
        "a & <b> c.txt",
        "sub/big.bin",
        "sub/deeper/x.json",
    ] {
        want.insert(src.join(f));
    }
    assert_eq!(files, want, "files reached by links");
    assert!(pages >= 7, "pages rendered: {pages}");
}
