//! etcd versions in scenario files, where a symptom depends on the version under test: a
//! requirement on a scenario or an expectation (`etcd = ">=3.5"`), and text that differs by version
//! (`error = { "<3.5" = "…BadCertificate", ">=3.5" = "…CertificateRequired" }`). What does not apply
//! to the version under test is reported as not applicable — never silently passed.
//!
//! The version under test is read from the etcd binary itself ([`crate::downloads`]).

use std::fmt;

use semver::{Version, VersionReq};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A requirement on the etcd version, as a scenario writes it (`">=3.5"`, `"<3.5"`, `"~3.5.16"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdReq {
    req: VersionReq,
    text: String,
}

impl EtcdReq {
    /// Reads a requirement; the error says what one looks like.
    pub fn parse(text: &str) -> Result<Self, String> {
        VersionReq::parse(text)
            .map(|req| Self {
                req,
                text: text.to_owned(),
            })
            .map_err(|e| {
                format!("`{text}` is not an etcd version requirement ({e}); write e.g. \">=3.5\" or \"<3.5\"")
            })
    }

    /// Whether `version` meets it.
    pub fn matches(&self, version: &Version) -> bool {
        self.req.matches(version)
    }
}

impl fmt::Display for EtcdReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for EtcdReq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(de::Error::custom)
    }
}

/// Whether an expectation with requirement `req` applies to `version` (`None`: etcd did not say
/// which version it is, so no requirement can be judged).
pub fn applies(req: Option<&EtcdReq>, version: Option<&Version>) -> bool {
    match (req, version) {
        (None, _) => true,
        (Some(req), Some(version)) => req.matches(version),
        (Some(_), None) => false,
    }
}

/// Text that is the same on every version, or differs by version; each is one text or a list of
/// texts any of which will do (a symptom that shows one of several ways, all measured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versioned {
    /// The same on every version.
    Always(Vec<String>),
    /// Per requirement; the first that the version meets applies.
    ByVersion(Vec<(EtcdReq, Vec<String>)>),
}

impl Versioned {
    /// The texts for `version`; `None` when no requirement applies.
    pub fn for_version(&self, version: Option<&Version>) -> Option<&[String]> {
        match self {
            Self::Always(texts) => Some(texts),
            Self::ByVersion(alternatives) => alternatives
                .iter()
                .find(|(req, _)| applies(Some(req), version))
                .map(|(_, texts)| texts.as_slice()),
        }
    }
}

/// One text, or a list of texts.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Vec<String> {
    fn from(texts: OneOrMany) -> Self {
        match texts {
            OneOrMany::One(text) => vec![text],
            OneOrMany::Many(texts) => texts,
        }
    }
}

impl<'de> Deserialize<'de> for Versioned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextOrTable;

        impl<'de> Visitor<'de> for TextOrTable {
            type Value = Versioned;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a text, a list of texts (any of them), or a table of etcd version \
                     requirements to those (`{ \"<3.5\" = \"…\", \">=3.5\" = \"…\" }`)",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Versioned, E> {
                Ok(Versioned::Always(vec![text.to_owned()]))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Versioned, S::Error> {
                let mut texts = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    texts.push(text);
                }
                Ok(Versioned::Always(texts))
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Versioned, M::Error> {
                let mut alternatives = Vec::new();
                while let Some((req, texts)) = map.next_entry::<String, OneOrMany>()? {
                    alternatives.push((
                        EtcdReq::parse(&req).map_err(de::Error::custom)?,
                        texts.into(),
                    ));
                }
                if alternatives.is_empty() {
                    return Err(de::Error::custom("an empty table names no version"));
                }
                Ok(Versioned::ByVersion(alternatives))
            }
        }

        deserializer.deserialize_any(TextOrTable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        error: Versioned,
        etcd: Option<EtcdReq>,
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn text_by_version_picks_the_alternative_the_version_meets() {
        let doc: Doc = toml::from_str(
            "etcd = \">=3.4\"\nerror = { \"<3.5\" = \"BadCertificate\", \">=3.5\" = \"CertificateRequired\" }",
        )
        .unwrap();
        assert_eq!(
            doc.error.for_version(Some(&v("3.4.23"))),
            Some(&["BadCertificate".to_owned()][..])
        );
        assert_eq!(
            doc.error.for_version(Some(&v("3.5.16"))),
            Some(&["CertificateRequired".to_owned()][..])
        );
        assert_eq!(
            doc.error.for_version(None),
            None,
            "an unknown version meets nothing"
        );
        assert!(applies(doc.etcd.as_ref(), Some(&v("3.6.0"))));
        assert!(!applies(doc.etcd.as_ref(), Some(&v("3.3.25"))));
        assert!(applies(None, None));
    }

    #[test]
    fn the_same_text_on_every_version_is_a_plain_string() {
        let doc: Doc = toml::from_str("error = \"context deadline exceeded\"").unwrap();
        assert_eq!(
            doc.error.for_version(None),
            Some(&["context deadline exceeded".to_owned()][..])
        );
        let doc: Doc = toml::from_str("error = { \"<3.5\" = [\"a\", \"b\"] }").unwrap();
        assert_eq!(
            doc.error.for_version(Some(&v("3.4.0"))),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
    }

    #[test]
    fn a_bad_requirement_says_what_one_looks_like() {
        let err = toml::from_str::<Doc>("error = { \"three-five\" = \"x\" }").unwrap_err();
        assert!(
            err.message()
                .contains("`three-five` is not an etcd version requirement"),
            "{err}"
        );
        assert!(err.message().contains("\">=3.5\""), "{err}");
    }
}
