//! `--image ROLE=REFERENCE`: the images a kube run installs, each nameable by the
//! user (an air-gapped mirror, a private registry, a locally built tag), passed to
//! the chart as its `*.image.repository` / `*.image.tag` values.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Which image of the chart a reference replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageRole {
    /// The combined image (Dockerfile.harness): the chart's `image`.
    Harness,
    /// The SUT sidecar: the reference SUT's (images/sut/Dockerfile), the chart's
    /// `sut.image`; for a profile with its own controller, the profile's `sut.image`.
    Sut,
    /// The in-cluster Prometheus: `prometheus.image`.
    Prometheus,
}

impl ImageRole {
    const ALL: [ImageRole; 3] = [Self::Harness, Self::Sut, Self::Prometheus];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Harness => "harness",
            Self::Sut => "sut",
            Self::Prometheus => "prometheus",
        }
    }

    /// The chart's values key holding `repository` and `tag`.
    fn values_key(self) -> &'static str {
        match self {
            Self::Harness => "image",
            Self::Sut => "sut.image",
            Self::Prometheus => "prometheus.image",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("--image {0:?}: expected ROLE=REPOSITORY:TAG, ROLE one of harness, sut, prometheus")]
    Form(String),
    #[error("--image {0:?}: unknown role; one of harness, sut, prometheus")]
    Role(String),
    #[error("--image {0:?}: the reference needs a tag (REPOSITORY:TAG); digests are not supported by the chart yet")]
    Reference(String),
}

/// One `--image` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOverride {
    pub role: ImageRole,
    pub repository: String,
    pub tag: String,
}

impl FromStr for ImageOverride {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (role, reference) = s.split_once('=').ok_or_else(|| ImageError::Form(s.into()))?;
        let role =
            ImageRole::ALL.into_iter().find(|r| r.as_str() == role.trim()).ok_or_else(|| ImageError::Role(s.into()))?;
        let reference = reference.trim();
        if reference.contains('@') || reference.chars().any(char::is_whitespace) {
            return Err(ImageError::Reference(s.into()));
        }
        // The tag follows the last ':' after the last '/' (a registry's :port is before it).
        let last_segment = reference.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match reference[last_segment..].rfind(':') {
            Some(i) => (&reference[..last_segment + i], &reference[last_segment + i + 1..]),
            None => return Err(ImageError::Reference(s.into())),
        };
        if repository.is_empty() || repository.ends_with('/') || tag.is_empty() {
            return Err(ImageError::Reference(s.into()));
        }
        Ok(Self { role, repository: repository.into(), tag: tag.into() })
    }
}

impl fmt::Display for ImageOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:{}", self.role.as_str(), self.repository, self.tag)
    }
}

/// `helm --set-string` arguments for the overrides (a later one for a role wins).
pub fn helm_set_strings(images: &[ImageOverride]) -> Vec<String> {
    let mut last: std::collections::BTreeMap<ImageRole, &ImageOverride> = Default::default();
    for i in images {
        last.insert(i.role, i);
    }
    last.values()
        .flat_map(|i| {
            let key = i.role.values_key();
            [format!("{key}.repository={}", i.repository), format!("{key}.tag={}", i.tag)]
        })
        .collect()
}

/// The image the last `--image sut=...` names, as `REPOSITORY:TAG`: on a profile with
/// its own controller it replaces the profile's `sut.image` (a mirror of the user's image).
pub fn sut_image(images: &[ImageOverride]) -> Option<String> {
    images.iter().rev().find(|i| i.role == ImageRole::Sut).map(|i| format!("{}:{}", i.repository, i.tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ImageOverride, ImageError> {
        s.parse()
    }

    #[test]
    fn parses_repository_and_tag_with_registry_ports() {
        let i = parse("harness=registry.local:5000/team/scaletest-harness:v1").unwrap();
        assert_eq!(i.role, ImageRole::Harness);
        assert_eq!(i.repository, "registry.local:5000/team/scaletest-harness");
        assert_eq!(i.tag, "v1");
        let i = parse("prometheus=scaletest-prometheus:v2.55.0").unwrap();
        assert_eq!((i.repository.as_str(), i.tag.as_str()), ("scaletest-prometheus", "v2.55.0"));
        assert_eq!(i.to_string(), "prometheus=scaletest-prometheus:v2.55.0");
    }

    #[test]
    fn refuses_malformed_references_naming_the_argument() {
        assert_eq!(parse("scaletest-harness:dev"), Err(ImageError::Form("scaletest-harness:dev".into())));
        assert_eq!(parse("kwok=x:1"), Err(ImageError::Role("kwok=x:1".into())));
        for bad in
            ["sut=registry.local:5000/scaletest-sut", "sut=scaletest-sut", "sut=x@sha256:abc", "sut=:tag", "sut=x:"]
        {
            assert_eq!(parse(bad), Err(ImageError::Reference(bad.into())), "{bad}");
        }
    }

    #[test]
    fn helm_values_per_role_last_wins() {
        let images = [
            parse("sut=a/sut:1").unwrap(),
            parse("harness=h:2").unwrap(),
            parse("sut=b/sut:3").unwrap(),
            parse("prometheus=p:4").unwrap(),
        ];
        assert_eq!(
            helm_set_strings(&images),
            [
                "image.repository=h",
                "image.tag=2",
                "sut.image.repository=b/sut",
                "sut.image.tag=3",
                "prometheus.image.repository=p",
                "prometheus.image.tag=4",
            ]
        );
        assert!(helm_set_strings(&[]).is_empty());
    }

    #[test]
    fn the_last_sut_image_names_the_users_controller_image() {
        let images = [parse("sut=a/one:1").unwrap(), parse("harness=h:2").unwrap(), parse("sut=b/two:3").unwrap()];
        assert_eq!(sut_image(&images).as_deref(), Some("b/two:3"));
        assert_eq!(sut_image(&images[1..2]), None);
    }
}
