//! Signing the client in as docker and podman do: a bearer token per repository from the
//! registry's token service, fetched once and reused, instead of credentials on every request.

use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OnceCell};

use crate::Result;

/// A token is fetched again after this long (Berth issues them for 5 minutes).
const REUSE_FOR: Duration = Duration::from_secs(120);

/// Where a registry that asks for bearer tokens issues them.
struct Challenge {
    realm: Url,
    service: String,
}

pub struct BearerAuth {
    basic: HeaderValue,
    /// A client without default credentials, for the challenge and the token service.
    plain: Client,
    /// `None` once the registry is known to let anonymous clients in (no tokens then).
    challenge: OnceCell<Option<Challenge>>,
    /// Token header by scope; locked while one is fetched so a burst asks once.
    tokens: Mutex<HashMap<String, (HeaderValue, Instant)>>,
}

/// Shows no credentials or tokens.
impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").finish_non_exhaustive()
    }
}

impl BearerAuth {
    pub fn new(basic: HeaderValue, plain: Client) -> Self {
        BearerAuth {
            basic,
            plain,
            challenge: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// `request` to `url` signed in: with a bearer token for the repository (or catalog) the
    /// URL names when the registry issues tokens, else with the Basic credentials.
    pub async fn sign(
        &self,
        base: &Url,
        url: &Url,
        request: RequestBuilder,
    ) -> Result<RequestBuilder> {
        let Some(scopes) = scopes_of(url) else {
            return Ok(request.header(AUTHORIZATION, self.basic.clone()));
        };
        let challenge = self
            .challenge
            .get_or_try_init(|| discover(&self.plain, base))
            .await?;
        let Some(challenge) = challenge else {
            return Ok(request.header(AUTHORIZATION, self.basic.clone()));
        };
        let key = scopes.join(" ");
        let mut tokens = self.tokens.lock().await;
        if let Some((token, fetched)) = tokens.get(&key) {
            if fetched.elapsed() < REUSE_FOR {
                return Ok(request.header(AUTHORIZATION, token.clone()));
            }
        }
        let token = self.fetch(challenge, &scopes).await?;
        tokens.insert(key, (token.clone(), Instant::now()));
        Ok(request.header(AUTHORIZATION, token))
    }

    async fn fetch(&self, challenge: &Challenge, scopes: &[String]) -> Result<HeaderValue> {
        #[derive(serde::Deserialize)]
        struct Issued {
            token: Option<String>,
            access_token: Option<String>,
        }
        let mut url = challenge.realm.clone();
        url.query_pairs_mut()
            .append_pair("service", &challenge.service);
        for scope in scopes {
            url.query_pairs_mut().append_pair("scope", scope);
        }
        let resp = self
            .plain
            .get(url.clone())
            .header(AUTHORIZATION, self.basic.clone())
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET {url}: {}", resp.status()).into());
        }
        let issued: Issued = resp.json().await?;
        let token = issued
            .token
            .or(issued.access_token)
            .ok_or_else(|| format!("GET {url}: no token in the answer"))?;
        Ok(format!("Bearer {token}").parse()?)
    }
}

/// Asks `/v2/` without credentials: a 401 with a `Bearer` challenge says where tokens come from.
async fn discover(client: &Client, base: &Url) -> Result<Option<Challenge>> {
    let resp = client.get(base.join("v2/")?).send().await?;
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    let Some(header) = resp.headers().get(WWW_AUTHENTICATE) else {
        return Ok(None);
    };
    let header = header.to_str()?;
    let Some(params) = header.strip_prefix("Bearer ") else {
        return Ok(None);
    };
    let param = |name: &str| {
        params.split(',').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"').to_owned())
        })
    };
    let realm = param("realm").ok_or_else(|| format!("no realm in {header:?}"))?;
    Ok(Some(Challenge {
        realm: base.join(&realm)?,
        service: param("service").unwrap_or_default(),
    }))
}

/// The token scopes a registry request needs, as docker asks for them; `None` for requests
/// outside a repository (the API root, the Hub API), which keep Basic credentials.
fn scopes_of(url: &Url) -> Option<Vec<String>> {
    let path = url.path().strip_prefix("/v2/")?;
    if path.starts_with("_catalog") {
        return Some(vec!["registry:catalog:*".to_owned()]);
    }
    let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|kind| path.rfind(kind))
        .max()?;
    let mut scopes = vec![format!("repository:{}:pull,push", &path[..end])];
    if let Some((_, from)) = url.query_pairs().find(|(key, _)| key == "from") {
        scopes.push(format!("repository:{from}:pull"));
    }
    Some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_the_repository_as_docker_asks() {
        let scopes = |u: &str| scopes_of(&Url::parse(u).unwrap());
        assert_eq!(
            scopes("http://r/v2/acme/app/blobs/uploads/?mount=sha256:1&from=acme/base"),
            Some(vec![
                "repository:acme/app:pull,push".to_owned(),
                "repository:acme/base:pull".to_owned()
            ])
        );
        assert_eq!(
            scopes("http://r/v2/a/manifests/v1"),
            Some(vec!["repository:a:pull,push".to_owned()])
        );
        assert_eq!(
            scopes("http://r/v2/_catalog?n=10"),
            Some(vec!["registry:catalog:*".to_owned()])
        );
        assert_eq!(scopes("http://r/v2/"), None);
        assert_eq!(scopes("http://r/v1/search?q=x"), None);
    }
}
