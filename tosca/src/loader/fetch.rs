//! Fetching URL imports: the only network IO of the `tosca` crate.

/// Fetches the bytes behind a URL. A trait so tests (and embedders with their own HTTP stack)
/// can replace the network; the loader has already checked the scheme and consulted the import
/// map and the cache before it calls this.
pub trait Fetcher: Send + Sync {
    /// The body of a successful response, or a reason fit for a diagnostic message.
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// The default fetcher: HTTPS through reqwest with rustls (no OpenSSL, so it builds anywhere).
#[cfg(feature = "fetch")]
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    /// Larger responses are refused: an import is a YAML file, never a download.
    pub max_size: usize,
    pub timeout: std::time::Duration,
}

#[cfg(feature = "fetch")]
impl HttpFetcher {
    pub fn new(max_size: usize) -> Self {
        HttpFetcher { max_size, timeout: std::time::Duration::from_secs(30) }
    }
}

#[cfg(feature = "fetch")]
impl Fetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        // reqwest's blocking client owns a tokio runtime and panics when created or dropped
        // inside another runtime. Running it on its own thread makes `load` callable from
        // anywhere, including the async server.
        std::thread::scope(|s| {
            match std::thread::Builder::new()
                .name("rosca-fetch".into())
                .spawn_scoped(s, || fetch_blocking(url, self.max_size, self.timeout))
            {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err("the HTTP client failed unexpectedly".to_string())),
                Err(e) => Err(format!("cannot start the HTTP client thread: {e}")),
            }
        })
    }
}

#[cfg(feature = "fetch")]
fn fetch_blocking(url: &str, max_size: usize, timeout: std::time::Duration) -> Result<Vec<u8>, String> {
    use super::location::{is_insecure_remote, is_loopback};
    use std::io::Read;

    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") || is_insecure_remote(&parsed) {
        return Err("only https:// URLs are fetched (http:// only from this machine)".into());
    }
    // A remote server may redirect only to HTTPS: following it to plain http, even on
    // loopback, would let a published template probe services on the user's machine.
    let from_loopback = is_loopback(&parsed);
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let to = attempt.url();
        let allowed = to.scheme() == "https" || (to.scheme() == "http" && from_loopback && !is_insecure_remote(to));
        if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else if allowed {
            attempt.follow()
        } else {
            attempt.error("redirected to a non-HTTPS URL")
        }
    });
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .user_agent(concat!("rosca/", env!("CARGO_PKG_VERSION")));
    if is_loopback(&parsed) {
        // A proxy from the environment cannot reach this machine's loopback.
        builder = builder.no_proxy();
    }
    let client = builder.build().map_err(|e| format!("cannot create the HTTP client: {}", crate::diag::error_chain(&e)))?;
    let response = client.get(parsed).send().map_err(|e| crate::diag::error_chain(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    if let Some(len) = response.content_length() {
        if len > max_size as u64 {
            return Err(format!("the response is {len} bytes, above the limit of {max_size} bytes"));
        }
    }
    let mut body = Vec::new();
    response
        .take(max_size as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the response failed: {e}"))?;
    if body.len() > max_size {
        return Err(format!("the response is larger than the limit of {max_size} bytes"));
    }
    Ok(body)
}

