//! IPFS: `ipfs+http://host:port` (the Kubo RPC API of a node, read-write, blocks only) and
//! `ipfs+gateway+http(s)://host` (the trustless gateway protocol, read-only). Every block that
//! either returns is hashed and compared with its CID before it is handed out.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use reqwest::Client;
use reqwest::header;
use reqwest::multipart::{Form, Part};

use crate::block::{BlockHash, block_cid, check_verifiable, codec_name, verify_block};
use crate::error::{Error, Result};
use crate::http::{body, client, send};
use crate::options::FetchOptions;
use crate::runtime::call;
use crate::{Kind, Warehouse};

fn no_objects(url: &str) -> Error {
    Error::Unsupported {
        url: url.to_owned(),
        what: "objects by key (IPFS serves blocks by CID)",
    }
}

/// The Kubo RPC API of an IPFS node (Kubo, js-ipfs): `block/get`, `block/put`, `dag/import`.
/// Every request is a POST, as the API demands. A node looks for a missing block until the
/// `timeout` parameter runs out ([`FetchOptions::ipfs_block_timeout`]) and then answers with
/// an error, which becomes [`Error::NotFound`].
#[derive(Debug)]
pub struct IpfsRpcWarehouse {
    url: String,
    api: url::Url,
    client: Client,
    opts: FetchOptions,
}

impl IpfsRpcWarehouse {
    /// A warehouse on the node whose RPC API is at `base` (`http://host:port`).
    pub fn new(url: &str, base: url::Url, opts: &FetchOptions) -> Result<IpfsRpcWarehouse> {
        let mut api = base;
        if let Ok(mut s) = api.path_segments_mut() {
            s.pop_if_empty().extend(["api", "v0", ""]);
        }
        Ok(IpfsRpcWarehouse {
            client: client(opts, url)?,
            url: url.to_owned(),
            api,
            opts: opts.clone(),
        })
    }

    fn endpoint(&self, path: &str, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.api.join(path).expect("a relative API path joins");
        u.query_pairs_mut().extend_pairs(query);
        u
    }

    /// One `block/put` with the codec given under `codec_param`; the CID the node answers.
    fn block_put(
        &self,
        url: &str,
        data: &Bytes,
        codec_param: &str,
        codec_name: &str,
        hash: BlockHash,
    ) -> Result<Cid> {
        let u = self.endpoint(
            "block/put",
            &[
                (codec_param, codec_name),
                ("mhtype", hash.name()),
                ("mhlen", "32"),
                ("pin", "false"),
            ],
        );
        let answer = call(&self.opts, url, |_| {
            let part = Part::stream(data.clone())
                .file_name("block")
                .mime_str("application/octet-stream")
                .expect("a valid MIME type");
            let req = self
                .client
                .post(u.clone())
                .multipart(Form::new().part("data", part));
            async move {
                let resp = send(url, req).await?;
                body(url, resp).await
            }
        })?;
        let parsed: PutAnswer =
            serde_json::from_slice(&answer).map_err(|e| Error::BadResponse {
                url: url.to_owned(),
                reason: format!("block/put answer is not {{\"Key\": …}}: {e}"),
            })?;
        Cid::try_from(parsed.key.as_str()).map_err(|e| Error::BadResponse {
            url: url.to_owned(),
            reason: format!("block/put answered CID {:?}: {e}", parsed.key),
        })
    }

    /// One RPC call answering a JSON object, decoded as `T` (`shape` says what was expected,
    /// for the error); with the call's URL.
    fn rpc_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        shape: &str,
    ) -> Result<(T, String)> {
        let u = self.endpoint(path, query);
        let url = u.as_str();
        let answer = call(&self.opts, url, |_| async {
            let resp = send(url, self.client.post(u.clone())).await?;
            body(url, resp).await
        })?;
        let value = serde_json::from_slice(&answer).map_err(|e| Error::BadResponse {
            url: url.to_owned(),
            reason: format!("{path} answer is not {shape}: {e}"),
        })?;
        Ok((value, url.to_owned()))
    }

    fn block_url(&self, cid: &Cid) -> String {
        format!("{}/ipfs/{cid}", self.url.trim_end_matches('/'))
    }

    /// The node's search timeout for one attempt: the configured one, but never more than
    /// what is left of the call's deadline (less a margin for the answer to travel back).
    fn node_timeout(&self, started: std::time::Instant) -> String {
        let left = self
            .opts
            .deadline
            .saturating_sub(started.elapsed())
            .saturating_sub(Duration::from_millis(200));
        let t = self
            .opts
            .ipfs_block_timeout
            .min(left)
            .max(Duration::from_millis(100));
        format!("{}ms", t.as_millis())
    }
}

/// An error answer of the RPC API, `{"Message": …, "Code": …, "Type": "error"}`, that means
/// the node does not have the block (it looked until its timeout, or knows it lacks it).
fn means_not_found(e: &Error) -> bool {
    match e {
        Error::Status { status, detail, .. } if *status == 500 || *status == 404 => {
            let d = detail.to_ascii_lowercase();
            [
                "timeout",
                "timed out",
                "not found",
                "aborted",
                "could not find",
            ]
            .iter()
            .any(|m| d.contains(m))
        }
        _ => false,
    }
}

/// An error answer to `block/put` that means the node has no hasher for the multihash.
fn refuses_hash(e: &Error) -> bool {
    match e {
        Error::Status { status, detail, .. } if *status >= 400 && *status < 600 => {
            let d = detail.to_ascii_lowercase();
            d.contains("hasher") || d.contains("mhtype") || d.contains("multihash")
        }
        _ => false,
    }
}

#[derive(serde::Deserialize)]
struct PinAnswer {
    #[serde(rename = "Pins", default)]
    pins: Vec<String>,
}

#[derive(serde::Deserialize)]
struct PinList {
    #[serde(rename = "Keys", default)]
    keys: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PutAnswer {
    #[serde(rename = "Key")]
    key: String,
}

impl Warehouse for IpfsRpcWarehouse {
    fn url(&self) -> &str {
        &self.url
    }

    fn kind(&self) -> Kind {
        Kind::IpfsRpc
    }

    fn get(&self, _key: &str) -> Result<Bytes> {
        Err(no_objects(&self.url))
    }

    fn get_range(&self, _key: &str, _range: Range<u64>) -> Result<Bytes> {
        Err(no_objects(&self.url))
    }

    fn put(&self, _key: &str, _data: Bytes) -> Result<()> {
        Err(no_objects(&self.url))
    }

    fn exists(&self, _key: &str) -> Result<bool> {
        Err(no_objects(&self.url))
    }

    fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Err(no_objects(&self.url))
    }

    fn get_block(&self, cid: &Cid) -> Result<Bytes> {
        check_verifiable(cid)?;
        let url = self.block_url(cid);
        let url = url.as_str();
        let started = std::time::Instant::now();
        let text = cid.to_string();
        let bytes = call(&self.opts, url, |_| {
            let u = self.endpoint(
                "block/get",
                &[("arg", &text), ("timeout", &self.node_timeout(started))],
            );
            async move {
                let resp = match send(url, self.client.post(u)).await {
                    Err(e) if means_not_found(&e) => {
                        return Err(Error::NotFound {
                            url: url.to_owned(),
                        });
                    }
                    other => other?,
                };
                body(url, resp).await
            }
        })?;
        verify_block(cid, &bytes, url)?;
        Ok(bytes)
    }

    fn put_block(&self, codec: u64, hash: BlockHash, data: Bytes) -> Result<Cid> {
        let cid = block_cid(codec, hash, &data);
        let url = self.block_url(&cid);
        let url = url.as_str();
        let Some(codec_name) = codec_name(codec) else {
            return Err(Error::Cid {
                cid: cid.to_string(),
                reason: format!("codec 0x{codec:x} has no name in the RPC API"),
            });
        };
        // Kubo names the codec `cid-codec`; js-ipfs only knows the older `format` and
        // silently stores the block under a CIDv0 (dag-pb) when given the newer name. Both
        // keep the block by its multihash, so the second try just gets the right answer.
        let theirs = match self.block_put(url, &data, "cid-codec", codec_name, hash) {
            Ok(theirs) if theirs.hash() == cid.hash() && theirs != cid => {
                tracing::debug!(url, %theirs, "node ignored cid-codec; retrying with format");
                self.block_put(url, &data, "format", codec_name, hash)?
            }
            Ok(theirs) => theirs,
            Err(e) if refuses_hash(&e) => {
                // js-ipfs 0.66 has no BLAKE3 hasher for block/put, but imports a CAR of such
                // blocks; the block is then read back to confirm the node serves it.
                tracing::info!(url, error = %e, "node refused the hash on block/put; importing a CAR");
                self.put_car(crate::car::car_v1(&[cid], &[(cid, &data)]))?;
                let back = self.get_block(&cid)?;
                if back.len() != data.len() {
                    return Err(Error::BadResponse {
                        url: url.to_owned(),
                        reason: "the node does not serve the block it imported".into(),
                    });
                }
                return Ok(cid);
            }
            Err(e) => return Err(e),
        };
        // A node may name a dag-pb SHA2-256 block by its CIDv0 (js-ipfs does): the same block.
        if theirs.hash() != cid.hash() || theirs.codec() != cid.codec() {
            tracing::warn!(url, ours = %cid, %theirs, "node stored the block under another CID");
            return Err(Error::BadResponse {
                url: url.to_owned(),
                reason: format!("the node stored the block as {theirs}, not {cid}"),
            });
        }
        Ok(cid)
    }

    fn pin(&self, cid: &Cid) -> Result<()> {
        let text = cid.to_string();
        // {"Pins": ["<cid>"]}, the CID in whatever base the node likes.
        let (pinned, url): (PinAnswer, _) = self.rpc_json(
            "pin/add",
            &[("arg", &text), ("recursive", "true")],
            "{\"Pins\": […]}",
        )?;
        if !pinned
            .pins
            .iter()
            .filter_map(|c| Cid::try_from(c.as_str()).ok())
            .any(|c| c.hash() == cid.hash())
        {
            return Err(Error::BadResponse {
                url,
                reason: format!("the node did not say it pinned {cid}: {:?}", pinned.pins),
            });
        }
        Ok(())
    }

    fn pins(&self) -> Result<Vec<Cid>> {
        // {"Keys": {"<cid>": {"Type": "recursive"}, …}}; a CID the node names oddly is left out.
        let (listed, _): (PinList, _) =
            self.rpc_json("pin/ls", &[("type", "recursive")], "{\"Keys\": {…}}")?;
        Ok(listed
            .keys
            .keys()
            .filter_map(|c| Cid::try_from(c.as_str()).ok())
            .collect())
    }

    fn put_car(&self, car: Bytes) -> Result<Vec<Cid>> {
        let u = self.endpoint("dag/import", &[("pin-roots", "false")]);
        let url = u.as_str();
        let answer = call(&self.opts, url, |_| {
            let form = Form::new().part(
                "data",
                Part::stream(car.clone())
                    .file_name("import.car")
                    .mime_str("application/vnd.ipld.car")
                    .expect("a valid MIME type"),
            );
            let req = self.client.post(u.clone()).multipart(form);
            async move {
                let resp = send(url, req).await?;
                body(url, resp).await
            }
        })?;
        // One JSON object per line; roots appear as {"Root": {"Cid": {"/": "…"}}}.
        let mut roots = Vec::new();
        for line in answer.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value =
                serde_json::from_slice(line).map_err(|e| Error::BadResponse {
                    url: url.to_owned(),
                    reason: format!("dag/import answer line is not JSON: {e}"),
                })?;
            if let Some(c) = v.pointer("/Root/Cid/~1").and_then(|c| c.as_str())
                && let Ok(cid) = Cid::try_from(c)
            {
                roots.push(cid);
            }
        }
        Ok(roots)
    }
}

/// A trustless gateway (`GET /ipfs/{cid}?format=raw`, `Accept: application/vnd.ipld.raw`):
/// read-only, blocks only, each verified against its CID, so any gateway, trusted or not, can
/// serve them.
#[derive(Debug)]
pub struct IpfsGatewayWarehouse {
    url: String,
    base: url::Url,
    client: Client,
    opts: FetchOptions,
}

impl IpfsGatewayWarehouse {
    /// A warehouse on the gateway at `base` (`http(s)://host[:port][/path]`).
    pub fn new(url: &str, base: url::Url, opts: &FetchOptions) -> Result<IpfsGatewayWarehouse> {
        Ok(IpfsGatewayWarehouse {
            client: client(opts, url)?,
            url: url.to_owned(),
            base,
            opts: opts.clone(),
        })
    }
}

impl Warehouse for IpfsGatewayWarehouse {
    fn url(&self) -> &str {
        &self.url
    }

    fn kind(&self) -> Kind {
        Kind::IpfsGateway
    }

    fn get(&self, _key: &str) -> Result<Bytes> {
        Err(no_objects(&self.url))
    }

    fn get_range(&self, _key: &str, _range: Range<u64>) -> Result<Bytes> {
        Err(no_objects(&self.url))
    }

    fn put(&self, _key: &str, _data: Bytes) -> Result<()> {
        Err(Error::ReadOnly {
            url: self.url.clone(),
        })
    }

    fn exists(&self, _key: &str) -> Result<bool> {
        Err(no_objects(&self.url))
    }

    fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Err(no_objects(&self.url))
    }

    fn get_block(&self, cid: &Cid) -> Result<Bytes> {
        check_verifiable(cid)?;
        let mut u = crate::http::join(&self.base, &format!("ipfs/{cid}"));
        u.query_pairs_mut().append_pair("format", "raw");
        let url = u.as_str();
        let bytes = call(&self.opts, url, |_| async {
            let req = self
                .client
                .get(u.clone())
                .header(header::ACCEPT, "application/vnd.ipld.raw");
            let resp = send(url, req).await?;
            body(url, resp).await
        })?;
        verify_block(cid, &bytes, url)?;
        Ok(bytes)
    }

    fn put_block(&self, _codec: u64, _hash: BlockHash, _data: Bytes) -> Result<Cid> {
        Err(Error::ReadOnly {
            url: self.url.clone(),
        })
    }

    fn put_car(&self, _car: Bytes) -> Result<Vec<Cid>> {
        Err(Error::ReadOnly {
            url: self.url.clone(),
        })
    }
}
