//! Images: inspection, the tags of a repository on the engine, and the parsing of
//! image references (`registry:5000/team/app:v2`, `app@sha256:…`, ids) that
//! choosing a rollback target needs.

use std::collections::HashMap;

use bollard::models::ImageInspect;
use bollard::query_parameters::ListImagesOptions;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{DockerClient, DockerError};

/// An image as Klaxon shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// What the container is (or will be) created from: a tag, or an id when the
    /// tag moved on.
    pub reference: String,
    /// `sha256:…`, the image id.
    pub id: String,
    /// The registry digest (`repo@sha256:…`) when the image came from a registry.
    pub digest: Option<String>,
    /// The repository the image belongs to (from its tags when `reference` is an
    /// id); empty for an untagged image.
    pub repository: String,
    pub created: Option<DateTime<Utc>>,
}

impl ImageInfo {
    pub fn from_inspect(reference: &str, img: &ImageInspect) -> ImageInfo {
        let id = img.id.clone().unwrap_or_default();
        let by_id = is_id_of(reference, &id);
        ImageInfo {
            reference: reference.to_string(),
            repository: if by_id {
                img.repo_tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .map(|t| repository(t).to_string())
                    .unwrap_or_default()
            } else {
                repository(reference).to_string()
            },
            id,
            digest: img.repo_digests.as_ref().and_then(|d| d.first().cloned()),
            created: img.created.as_ref().and_then(date_of),
        }
    }

    /// What the plan shows as the image's digest: the registry's when it came from
    /// one, else the image id (the digest of its configuration), 12 hex digits.
    pub fn short_digest(&self) -> String {
        match &self.digest {
            Some(d) => short_id(d.rsplit_once('@').map_or(d.as_str(), |(_, h)| h)),
            None => self.short_id(),
        }
    }

    /// `sha256:` and the first 12 hex digits, as `docker images` shows ids.
    pub fn short_id(&self) -> String {
        short_id(&self.id)
    }
}

pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    format!("sha256:{}", hex.chars().take(12).collect::<String>())
}

/// bollard's date type depends on its features (a String, chrono or time); all of
/// them serialize to RFC 3339, which keeps this independent of the choice.
pub fn date_of<T: Serialize>(v: &T) -> Option<DateTime<Utc>> {
    let value = serde_json::to_value(v).ok()?;
    crate::timefmt::parse_time(value.as_str()?)
}

/// The repository of an image reference: `registry:5000/team/app:v2` ->
/// `registry:5000/team/app`; `app@sha256:…` -> `app`.
pub fn repository(reference: &str) -> &str {
    if let Some((repo, _)) = reference.split_once('@') {
        return repo;
    }
    match reference.rfind(':') {
        Some(colon) if !reference[colon..].contains('/') => &reference[..colon],
        _ => reference,
    }
}

/// A repository as written by people and as Docker stores it compare equal:
/// `docker.io/library/app` is `app`.
pub fn normalize_repository(repo: &str) -> &str {
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo)
}

/// Whether `reference` names the image by its id (`sha256:…` or a prefix of 12 or
/// more hex digits, as Docker accepts) rather than by a tag.
pub fn is_id_of(reference: &str, image_id: &str) -> bool {
    let hex = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
    let r = hex(reference);
    r.len() >= 12 && r.chars().all(|c| c.is_ascii_hexdigit()) && hex(image_id).starts_with(&r)
}

/// Whether `reference` is an image id written out (`sha256:` and 12 or more hex
/// digits).
pub fn is_image_id(reference: &str) -> bool {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    reference.starts_with("sha256:")
        && hex.len() >= 12
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

impl DockerClient {
    pub async fn inspect_image(&self, reference: &str) -> Result<ImageInspect, DockerError> {
        let docker = self.client().await?;
        self.call(
            reference,
            self.request_timeout(),
            docker.inspect_image(reference),
        )
        .await
    }

    /// Every tag of `repo` on the engine, newest first (by the image's exact
    /// creation time: `docker images` rounds to seconds, and builds are often faster).
    pub async fn candidates(&self, repo: &str) -> Result<Vec<ImageInfo>, DockerError> {
        if repo.is_empty() {
            return Ok(Vec::new());
        }
        let opts = ListImagesOptions {
            filters: Some(HashMap::from([(
                "reference".to_string(),
                vec![repo.to_string()],
            )])),
            ..Default::default()
        };
        let docker = self.client().await?;
        let mut summaries = self
            .call(repo, self.request_timeout(), docker.list_images(Some(opts)))
            .await?;
        summaries.sort_by_key(|s| std::cmp::Reverse(s.created));
        summaries.truncate(25);
        let inspected =
            futures::future::join_all(summaries.iter().map(|s| self.inspect_image(s.id.as_str())))
                .await;
        let mut out = Vec::new();
        for (s, img) in summaries.iter().zip(inspected) {
            let created = img
                .ok()
                .and_then(|i| i.created.as_ref().and_then(date_of))
                .or_else(|| DateTime::from_timestamp(s.created, 0));
            for tag in &s.repo_tags {
                if repository(tag) == repo {
                    out.push(ImageInfo {
                        repository: repository(tag).to_string(),
                        reference: tag.clone(),
                        id: s.id.clone(),
                        digest: s.repo_digests.first().cloned(),
                        created,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then(a.reference.cmp(&b.reference))
        });
        Ok(out)
    }
}
