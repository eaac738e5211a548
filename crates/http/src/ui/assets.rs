//! The UI's static files, built into the binary and served under names that carry a hash
//! of their content, so browsers keep them for a year and still never run a stale copy.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use sha2::{Digest as _, Sha256};
use std::sync::LazyLock;

/// One static file.
pub(crate) struct Asset {
    stem: &'static str,
    extension: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

pub(crate) static STYLESHEET: Asset = Asset {
    stem: "berth",
    extension: "css",
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("assets/berth.css"),
};

pub(crate) static SCRIPT: Asset = Asset {
    stem: "copy",
    extension: "js",
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("assets/copy.js"),
};

pub(crate) static ICON: Asset = Asset {
    stem: "favicon",
    extension: "svg",
    content_type: "image/svg+xml",
    bytes: include_bytes!("assets/favicon.svg"),
};

static ALL: [&Asset; 3] = [&STYLESHEET, &SCRIPT, &ICON];

/// Each asset's served file name (`berth.3f9a0c12d4.css`), computed once.
static FILE_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ALL.iter()
        .map(|asset| {
            let digest = hex::encode(Sha256::digest(asset.bytes));
            format!("{}.{}.{}", asset.stem, &digest[..10], asset.extension)
        })
        .collect()
});

impl Asset {
    /// The path pages link to.
    pub fn href(&self) -> String {
        let index = ALL
            .iter()
            .position(|asset| std::ptr::eq(*asset, self))
            .expect("every asset is listed in ALL");
        format!("/static/{}", FILE_NAMES[index])
    }
}

/// `GET /static/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some(index) = FILE_NAMES.iter().position(|name| *name == file) else {
        let mut response = Response::new(Body::from("no such file\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let asset = ALL[index];
    let mut response = Response::new(Body::from(asset.bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_change_with_their_content() {
        let css = STYLESHEET.href();
        assert!(
            css.starts_with("/static/berth.") && css.ends_with(".css"),
            "{css}"
        );
        assert_ne!(css, SCRIPT.href());
        assert_eq!(css.len(), "/static/berth.0123456789.css".len());
    }
}
