//! `s3://bucket/prefix`: AWS S3 and S3-compatible servers, through object_store.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{Error, Result};
use crate::key::{validate_key, validate_prefix};
use crate::options::FetchOptions;
use crate::runtime::call;
use crate::{Kind, Warehouse};

/// An S3 warehouse: key `a/b` is the object `PREFIX/a/b` in the bucket.
///
/// Configuration, later sources winning: the `AWS_*` environment variables (as object_store
/// reads them: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, …); the shared files
/// (`~/.aws/credentials` and `~/.aws/config`, or `AWS_SHARED_CREDENTIALS_FILE` and
/// `AWS_CONFIG_FILE`, profile `AWS_PROFILE` or `default`) for what the environment leaves
/// unset; then the URL's query: `endpoint`, `region`, `allow_http`. A custom endpoint is
/// addressed path-style (`ENDPOINT/BUCKET/KEY`); plain `http` is allowed for loopback
/// endpoints (and elsewhere only with `allow_http=true`). With no credentials anywhere,
/// requests go unsigned (public buckets): the instance metadata service is never asked.
#[derive(Debug)]
pub struct S3Warehouse {
    url: String,
    bucket: String,
    prefix: String,
    store: Arc<dyn ObjectStore>,
    opts: FetchOptions,
}

/// Reads one profile's `key = value` lines from an INI-style AWS file.
fn ini_profile(path: &std::path::Path, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn is_loopback(endpoint: &str) -> bool {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| {
            u.host().map(|h| match h {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(a) => a.is_loopback(),
                url::Host::Ipv6(a) => a.is_loopback(),
            })
        })
        .unwrap_or(false)
}

/// S3 settings given by the caller (a configuration file of its own, a test): they win over
/// the environment, the shared files and the URL's query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token, with temporary credentials.
    pub session_token: Option<String>,
    /// Region (for signing).
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible server, addressed path-style.
    pub endpoint: Option<String>,
}

impl S3Warehouse {
    /// Opens `s3://bucket[/prefix][?endpoint=…&region=…&allow_http=true]`, configured from the
    /// environment, the shared files and the URL.
    pub fn new(url: &url::Url, opts: &FetchOptions) -> Result<S3Warehouse> {
        S3Warehouse::with_settings(url, opts, &S3Settings::default())
    }

    /// Like [`S3Warehouse::new`], with `settings` winning over every other source.
    pub fn with_settings(
        url: &url::Url,
        opts: &FetchOptions,
        settings: &S3Settings,
    ) -> Result<S3Warehouse> {
        let display = url.to_string();
        let invalid = |reason: String| Error::InvalidUrl {
            url: display.clone(),
            reason,
        };
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("no bucket (s3://BUCKET/PREFIX)".into()))?
            .to_owned();
        let prefix = url.path().trim_matches('/').to_owned();
        if !prefix.is_empty() {
            validate_key(&prefix).map_err(|e| invalid(e.to_string()))?;
        }
        let mut query: HashMap<String, String> = HashMap::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" | "region" | "allow_http" => {
                    query.insert(k.into_owned(), v.into_owned());
                }
                other => return Err(invalid(format!("unknown query parameter {other:?}"))),
            }
        }

        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);

        // Shared files, for what the environment leaves unset.
        let home = env("HOME").map(PathBuf::from);
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let creds_file = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
        let config_file = env("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
        let creds = creds_file
            .map(|p| ini_profile(&p, &profile))
            .unwrap_or_default();
        let config_section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        let config = config_file
            .map(|p| ini_profile(&p, &config_section))
            .unwrap_or_default();
        let mut have_creds = env("AWS_ACCESS_KEY_ID").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
            || env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some();
        if env("AWS_ACCESS_KEY_ID").is_none()
            && let (Some(id), Some(secret)) = (
                creds.get("aws_access_key_id"),
                creds.get("aws_secret_access_key"),
            )
        {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = creds.get("aws_session_token") {
                b = b.with_token(token);
            }
            have_creds = true;
        }
        let mut region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| config.get("region").cloned());
        let mut endpoint = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"))
            .or_else(|| config.get("endpoint_url").cloned());

        // The URL's query wins.
        if let Some(r) = query.get("region") {
            region = Some(r.clone());
        }
        if let Some(e) = query.get("endpoint") {
            endpoint = Some(e.clone());
        }
        if let Some(r) = &settings.region {
            region = Some(r.clone());
        }
        if let Some(e) = &settings.endpoint {
            endpoint = Some(e.clone());
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = &settings.session_token {
                b = b.with_token(token);
            }
            have_creds = true;
        }
        if let Some(r) = &region {
            b = b.with_region(r);
        }
        let mut allow_http = matches!(query.get("allow_http").map(String::as_str), Some("true"));
        if let Some(e) = &endpoint {
            url::Url::parse(e).map_err(|err| invalid(format!("endpoint {e:?}: {err}")))?;
            allow_http |= is_loopback(e);
            // Path-style: custom servers rarely have a DNS name per bucket.
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if !have_creds {
            b = b.with_skip_signature(true);
        }
        // Our own loop retries, with the crate's deadline; object_store's would retry inside
        // one of our attempts and hide the retries from the deadline.
        let retry = RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        };
        b = b.with_retry(retry).with_client_options(
            ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(opts.connect_timeout)
                .with_timeout(opts.request_timeout),
        );
        let store = b.build().map_err(|e| invalid(e.to_string()))?;
        let mut display = format!("s3://{bucket}");
        if !prefix.is_empty() {
            display.push('/');
            display.push_str(&prefix);
        }
        Ok(S3Warehouse {
            url: display,
            bucket,
            prefix,
            store: Arc::new(store),
            opts: opts.clone(),
        })
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn path(&self, key: &str) -> Result<(ObjectPath, String)> {
        validate_key(key)?;
        let full = self.full(key);
        let path = ObjectPath::parse(&full).map_err(|e| Error::InvalidKey {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        Ok((path, format!("s3://{}/{full}", self.bucket)))
    }
}

/// Maps object_store's errors: `Generic` covers connection trouble, cut-off bodies and 5xx and
/// is retried; the others are final.
fn map(url: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound {
            url: url.to_owned(),
        },
        object_store::Error::Generic { source, .. } => Error::Transport {
            url: url.to_owned(),
            message: crate::http::chain(source.as_ref()),
        },
        other => Error::S3 {
            url: url.to_owned(),
            message: crate::http::chain(&other),
        },
    }
}

impl Warehouse for S3Warehouse {
    fn url(&self) -> &str {
        &self.url
    }

    fn kind(&self) -> Kind {
        Kind::S3
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let (path, url) = self.path(key)?;
        let url = url.as_str();
        call(&self.opts, url, |_| async {
            let r = self.store.get(&path).await.map_err(|e| map(url, e))?;
            let size = r.meta.size;
            let bytes = r.bytes().await.map_err(|e| map(url, e))?;
            if bytes.len() as u64 != size {
                return Err(Error::Transport {
                    url: url.to_owned(),
                    message: format!("body of {} bytes for a {size}-byte object", bytes.len()),
                });
            }
            Ok(bytes)
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let (path, url) = self.path(key)?;
        let url = url.as_str();
        let want = crate::key::range_len(url, &range)?;
        if want == 0 {
            return Ok(Bytes::new());
        }
        call(&self.opts, url, |_| async {
            let bytes = self
                .store
                .get_range(&path, range.clone())
                .await
                .map_err(|e| map(url, e))?;
            if bytes.len() as u64 != want {
                tracing::warn!(url, got = bytes.len(), want, "range answer rejected");
                return Err(Error::BadResponse {
                    url: url.to_owned(),
                    reason: format!("{} bytes for a {want}-byte range", bytes.len()),
                });
            }
            Ok(bytes)
        })
    }

    fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let (path, url) = self.path(key)?;
        let url = url.as_str();
        call(&self.opts, url, |_| async {
            self.store
                .put(&path, data.clone().into())
                .await
                .map(|_| ())
                .map_err(|e| map(url, e))
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let (path, url) = self.path(key)?;
        let url = url.as_str();
        call(&self.opts, url, |_| async {
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(map(url, e)),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (path, url) = self.path(key)?;
        let url = url.as_str();
        call(&self.opts, url, |_| async {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(map(url, e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        // object_store lists whole path segments; list the deepest complete directory and
        // filter by the rest, so prefixes behave as plain string prefixes like elsewhere.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let full_dir = if dir.is_empty() {
            self.prefix.clone()
        } else {
            self.full(dir)
        };
        let url = format!("s3://{}/{}", self.bucket, self.full(prefix));
        let url = url.as_str();
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        call(&self.opts, url, |_| async {
            let p = if full_dir.is_empty() {
                None
            } else {
                Some(ObjectPath::parse(&full_dir).map_err(|e| Error::InvalidKey {
                    key: prefix.to_owned(),
                    reason: e.to_string(),
                })?)
            };
            let metas: Vec<_> = self
                .store
                .list(p.as_ref())
                .try_collect()
                .await
                .map_err(|e| map(url, e))?;
            let mut keys: Vec<String> = metas
                .into_iter()
                .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_owned))
                .filter(|k| k.starts_with(prefix))
                .collect();
            keys.sort();
            Ok(keys)
        })
    }
}
