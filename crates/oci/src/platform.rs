//! Platforms (`linux/arm64/v8`): as an index's descriptors and an image configuration name them.

use serde_json::Value;

/// The configuration media type of an OCI image.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The configuration media type of a Docker schema 2 image.
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Image configurations larger than this are not read for their platform (real ones are a
/// few KiB; the descriptor's size tells before anything is read).
pub const MAX_PLATFORM_CONFIG_BYTES: u64 = 1024 * 1024;

/// The operating system and CPU an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// The CPU variant (`v7`, `v8`), when one is named.
    pub variant: Option<String>,
}

/// Whether a manifest with this config media type is a container image (anything else is an
/// artifact, which has no platform).
pub fn is_image_config(media_type: &str) -> bool {
    matches!(media_type, OCI_IMAGE_CONFIG | DOCKER_IMAGE_CONFIG)
}

impl Platform {
    /// Reads `os`, `architecture` and `variant` from a JSON object: an index descriptor's
    /// `platform`, or an image configuration. None unless both `os` and `architecture` are
    /// non-empty strings; an empty variant counts as none.
    pub fn from_json(value: &Value) -> Option<Platform> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Platform {
            os: text("os")?,
            architecture: text("architecture")?,
            variant: text("variant"),
        })
    }

    /// The platform an image configuration names; None for bytes that are not a JSON object
    /// or name no platform (cosign's signature images carry empty ones).
    pub fn from_image_config(bytes: &[u8]) -> Option<Platform> {
        let config: Value = serde_json::from_slice(bytes).ok()?;
        Platform::from_json(&config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn an_image_configuration_names_its_platform() {
        let config = br#"{"architecture":"arm64","variant":"v8","os":"linux",
            "config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            Platform::from_image_config(config),
            Some(platform("linux", "arm64", Some("v8")))
        );
        assert_eq!(
            Platform::from_image_config(br#"{"os":"linux","architecture":"amd64","variant":""}"#),
            Some(platform("linux", "amd64", None))
        );
    }

    #[test]
    fn anything_else_names_no_platform() {
        for config in [
            &b"not json"[..],
            b"",
            b"[1,2]",
            b"{}",
            br#"{"os":"linux"}"#,
            br#"{"os":"linux","architecture":7}"#,
            br#"{"os":"","architecture":""}"#,
        ] {
            assert_eq!(
                Platform::from_image_config(config),
                None,
                "{}",
                String::from_utf8_lossy(config)
            );
        }
    }

    #[test]
    fn only_image_configurations_are_images() {
        assert!(is_image_config(OCI_IMAGE_CONFIG));
        assert!(is_image_config(DOCKER_IMAGE_CONFIG));
        assert!(!is_image_config("application/vnd.oci.empty.v1+json"));
        assert!(!is_image_config("application/vnd.cncf.helm.config.v1+json"));
    }
}
