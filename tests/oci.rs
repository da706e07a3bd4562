//! `ware import`: OCI images built and converted by the reference tools (umoci, skopeo). The
//! root filesystem is umoci's own unpack of the image, bit for bit in ID; an image layout, an
//! archive of it, a `docker save` archive and a zstd-compressed copy give one ID; a damaged
//! blob and a missing REF are refused with their exit codes, naming what is at fault, and leave
//! no name behind; hand-built images that write through a symlink, name no entry in a
//! whiteout or lie in a diff_id are refused the same way.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs a reference tool; its stdout. Skips the test (None) if the tool is not installed.
fn tool(args: &[&str]) -> Option<String> {
    let out = match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) => o,
        Err(e) => {
            ware_test_kit::skip(format!("{}: {e} (scripts/setup installs it)", args[0]));
            return None;
        }
    };
    assert!(out.status.success(), "{args:?}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An image layout at `dir` with `base` (a tree of files, a symlink, a hardlink, a large file)
/// and `v2` over it (a file and a directory deleted, one added: whiteouts in its top layer).
fn build_image(w: &Ware, dir: &Path) -> Option<()> {
    let d = dir.to_str().unwrap();
    tool(&["umoci", "init", "--layout", d])?;
    tool(&["umoci", "new", "--image", &format!("{d}:base")])?;
    let b1 = w.path("b1");
    tool(&[
        "umoci",
        "unpack",
        "--image",
        &format!("{d}:base"),
        b1.to_str().unwrap(),
    ])?;
    let r = b1.join("rootfs");
    std::fs::create_dir_all(r.join("etc/sub")).unwrap();
    std::fs::create_dir_all(r.join("usr/share/doc/pkg")).unwrap();
    std::fs::write(r.join("etc/issue"), b"Debian\n").unwrap();
    std::fs::write(r.join("etc/sub/x"), b"x\n").unwrap();
    std::fs::write(r.join("usr/share/doc/pkg/README"), b"read me\n").unwrap();
    std::fs::write(r.join("big"), noise(901, 700_000)).unwrap();
    std::fs::hard_link(r.join("big"), r.join("big.link")).unwrap();
    std::os::unix::fs::symlink("sub/x", r.join("etc/x")).unwrap();
    tool(&[
        "umoci",
        "repack",
        "--image",
        &format!("{d}:base"),
        b1.to_str().unwrap(),
    ])?;
    let b2 = w.path("b2");
    tool(&[
        "umoci",
        "unpack",
        "--image",
        &format!("{d}:base"),
        b2.to_str().unwrap(),
    ])?;
    let r = b2.join("rootfs");
    std::fs::remove_file(r.join("etc/issue")).unwrap();
    std::fs::remove_dir_all(r.join("usr/share/doc/pkg")).unwrap();
    std::fs::write(r.join("usr/share/doc/other"), b"new\n").unwrap();
    tool(&[
        "umoci",
        "repack",
        "--image",
        &format!("{d}:v2"),
        b2.to_str().unwrap(),
    ])?;
    Some(())
}

/// `docker.tar` in `w`: the layout's `v2` as `docker save` writes it, tagged `repo/img:v2`.
fn docker_archive(w: &Ware, layout: &str) -> std::path::PathBuf {
    let docker = w.path("docker.tar");
    tool(&[
        "skopeo",
        "copy",
        &format!("oci:{layout}:v2"),
        &format!("docker-archive:{}:repo/img:v2", docker.display()),
    ])
    .unwrap();
    docker
}

/// The names in every layer of `image` (gzip tars), for checking what the test exercises.
fn layer_entries(layout: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            continue;
        }
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in a.entries().unwrap() {
            out.push(entry.unwrap().path().unwrap().display().to_string());
        }
    }
    out
}

#[test]
fn an_image_imports_as_the_tree_umoci_unpacks() {
    if !ware_test_kit::require(
        ware_test_kit::is_root(),
        "umoci unpack keeps owners as root",
    ) {
        return;
    }
    let w = Ware::new();
    let img = w.path("img");
    if build_image(&w, &img).is_none() {
        return;
    }
    let layers = layer_entries(&img);
    assert!(
        layers.iter().any(|e| e.ends_with(".wh.issue"))
            && layers.iter().any(|e| e.ends_with(".wh.pkg")),
        "the image has whiteouts: {layers:?}"
    );
    let d = img.to_str().unwrap();

    let out = w.ok(["--json", "import", &format!("oci:{d}:v2"), "--name", "img"]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["layers"].as_array().unwrap().len(), 2, "{r}");
    assert!(r["manifest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(w.ok(["name", "get", "img"]).trim(), id);

    // The reference: umoci's own unpack of the same image, packed.
    let reference = w.path("ref");
    tool(&[
        "umoci",
        "unpack",
        "--image",
        &format!("{d}:v2"),
        reference.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(w.pack(&reference.join("rootfs")), id);
    let listed = w.ok(["ls", &format!("{id}/usr/share/doc")]);
    assert!(
        listed.contains("other") && !listed.contains("pkg"),
        "{listed}"
    );
    assert!(!w.ok(["ls", &format!("{id}/etc")]).contains("issue"));

    // The same image as an archive, and recompressed with zstd: the same tree, the same ID.
    let archive = w.path("img.tar");
    tool(&[
        "skopeo",
        "copy",
        &format!("oci:{d}:v2"),
        &format!("oci-archive:{}:v2", archive.display()),
    ])
    .unwrap();
    assert_eq!(
        w.ok(["import", &format!("oci-archive:{}:v2", archive.display())])
            .trim(),
        id
    );
    let zimg = w.path("zimg");
    tool(&[
        "skopeo",
        "copy",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{d}:v2"),
        &format!("oci:{}:v2", zimg.display()),
    ])
    .unwrap();
    assert_eq!(
        w.ok(["import", &format!("oci:{}:v2", zimg.display())])
            .trim(),
        id
    );
    // As `docker save` writes it, by its tag.
    let docker = docker_archive(&w, d);
    let typed = format!("docker-archive:{}:repo/img:v2", docker.display());
    assert_eq!(w.ok(["import", &typed]).trim(), id);
    let r: serde_json::Value = serde_json::from_str(&w.ok(["--json", "import", &typed])).unwrap();
    assert!(r["manifest"].is_null() && r["config"].as_str().unwrap().starts_with("sha256:"));
    // The base alone is another tree.
    assert_ne!(w.ok(["import", &format!("oci:{d}:base")]).trim(), id);
}

#[test]
fn damaged_or_missing_image_parts_are_refused_naming_them() {
    let w = Ware::new();
    let img = w.path("img");
    if build_image(&w, &img).is_none() {
        return;
    }
    let d = img.to_str().unwrap();
    let docker = docker_archive(&w, d);

    // No such REF: not found, naming the refs there are.
    let out = w.run(["import", &format!("oci:{d}:nope")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("v2") && err.contains("base"),
        "{err}"
    );

    // A layer blob with one byte changed: corrupt, naming the blob; no name is set.
    let blobs = img.join("blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&largest, &bytes).unwrap();
    let out = w.run(["import", &format!("oci:{d}:v2"), "--name", "bad"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let hex = largest.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(hex) && err.contains("digest"), "{err}");
    assert_eq!(w.run(["name", "get", "bad"]).status.code(), Some(3));
    assert!(w.ok(["ls"]).trim().is_empty(), "nothing imported");

    // A docker archive whose layer has a byte changed: corrupt.
    let mut bytes = std::fs::read(&docker).unwrap();
    // The big file's bytes sit in the first, largest layer: change one near its middle.
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&docker, &bytes).unwrap();
    let out = w.run(["import", &format!("docker-archive:{}", docker.display())]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest"),
        "{out:?}"
    );

    // Not a layout at all.
    let out = w.run(["import", &format!("oci:{}", w.path("nowhere").display())]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("index.json"));
    let out = w.run(["import", "docker-daemon:x"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("docker-daemon"));
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}

/// Writes an OCI layout by hand at `dir`, tagged `t`: the layer tars as given (uncompressed),
/// their diff_ids as `diff_ids` says (the true ones when `None`).
fn hand_layout(dir: &Path, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let h = sha256(b);
        std::fs::write(blobs.join(&h), b).unwrap();
        serde_json::json!({"digest": format!("sha256:{h}"), "size": b.len()})
    };
    let diff_ids = diff_ids.unwrap_or_else(|| {
        layers
            .iter()
            .map(|l| format!("sha256:{}", sha256(l)))
            .collect()
    });
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let mut c = put(config.to_string().as_bytes());
    c["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let ls: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let mut d = put(l);
            d["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
            d
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": c, "layers": ls,
    });
    let mut m = put(manifest.to_string().as_bytes());
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "t"});
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [m]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// A tar of (path, symlink target or file content) entries.
fn layer(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, t).unwrap();
            }
            None => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Hostile and inconsistent images: a layer that writes through a lower layer's symlink, a
/// whiteout naming nothing, and a config whose diff_id is not the layer's are refused, naming
/// the layer and entry (or the diff_id), and nothing is imported or named.
#[test]
fn hostile_or_lying_images_are_refused_and_nothing_is_imported() {
    let w = Ware::new();
    let good = layer(&[("etc", Some("/tmp"), b""), ("f", None, b"fine")]);
    let through = layer(&[("etc/passwd", None, b"root::0:0::/:/bin/sh\n")]);
    // (name, layers, diff_ids, exit code, what the message says)
    type Case<'a> = (
        &'a str,
        Vec<Vec<u8>>,
        Option<Vec<String>>,
        i32,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "through",
            vec![good.clone(), through],
            None,
            1,
            vec!["layer 2", "etc/passwd"],
        ),
        (
            "whiteout",
            vec![good.clone(), layer(&[(".wh.", None, b"")])],
            None,
            1,
            vec!["layer 2", "whiteout"],
        ),
        (
            "lying",
            vec![good.clone()],
            Some(vec![format!("sha256:{}", "ab".repeat(32))]),
            4,
            vec!["diff_id", "layer 1"],
        ),
    ];
    for (name, layers, diff_ids, code, says) in cases {
        let dir = w.path(name);
        hand_layout(&dir, &layers, diff_ids);
        let out = w.run([
            "import",
            &format!("oci:{}:t", dir.display()),
            "--name",
            name,
        ]);
        assert_eq!(out.status.code(), Some(code), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for s in says {
            assert!(err.contains(s), "{name}: {err:?} lacks {s:?}");
        }
        assert_eq!(w.run(["name", "get", name]).status.code(), Some(3));
    }
    assert!(w.ok(["ls"]).trim().is_empty(), "nothing imported");
    // The good layer alone imports, its symlink kept as a symlink.
    let dir = w.path("ok");
    hand_layout(&dir, &[good], None);
    let id = w.ok(["import", &format!("oci:{}:t", dir.display())]);
    assert!(w.ok(["ls", id.trim()]).contains("etc -> /tmp"));
}
