//! S3 Object Lock and object versions: the requests object_store does not
//! make (Get/PutObjectLockConfiguration, ListObjectVersions, DELETE by
//! version id), signed here with SigV4 (sigv4.rs) and sent through the same
//! metered HTTP client, so they count in the transfer stats and update the
//! server clock skew. XML answers are read with quick-xml.
//!
//! The bucket's own lock configuration is the fact the repository goes by:
//! a default retention there makes the server stamp every new object with
//! a retain-until date from its own clock, whoever writes it (docs/immutability.md).

use super::sigv4::{self, Request, Signer};
use object_store::client::{HttpClient, HttpRequestBody};
use quick_xml::events::Event;

/// Where and as whom to send the requests.
pub(super) struct LockApi {
    pub(super) client: HttpClient,
    /// scheme://host[:port]
    pub(super) endpoint: String,
    pub(super) bucket: String,
    pub(super) virtual_host: bool,
    pub(super) key_id: String,
    pub(super) secret: String,
    pub(super) token: Option<String>,
    pub(super) region: String,
}

/// A bucket's Object Lock configuration as the server reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockConfig {
    /// Object Lock is enabled on the bucket (it then keeps versions).
    pub enabled: bool,
    /// The default retention new objects get: (mode, days).
    pub default_retention: Option<(String, u32)>,
}

/// One entry of a version listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// An answer: status, body.
type Answer = (u16, Vec<u8>);

impl LockApi {
    async fn call(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let (scheme, host) = self
            .endpoint
            .split_once("://")
            .unwrap_or(("https", self.endpoint.as_str()));
        let (host, mut path) = if self.virtual_host {
            (format!("{}.{host}", self.bucket), "/".to_string())
        } else {
            (host.to_string(), format!("/{}", self.bucket))
        };
        if let Some(k) = key {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(&sigv4::uri_encode(k, true));
        }
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let hash = sigv4::sha256_hex(&body);
        let checksum = {
            use base64::Engine;
            let d = ring::digest::digest(&ring::digest::SHA256, &body);
            base64::engine::general_purpose::STANDARD.encode(d.as_ref())
        };
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", &host),
            ("x-amz-date", &amz_date),
            ("x-amz-content-sha256", &hash),
        ];
        if !body.is_empty() {
            // PutObjectLockConfiguration requires an integrity header.
            headers.push(("x-amz-checksum-sha256", &checksum));
        }
        if let Some(t) = &self.token {
            headers.push(("x-amz-security-token", t));
        }
        let auth = Signer {
            key_id: &self.key_id,
            secret: &self.secret,
            region: &self.region,
            service: "s3",
            amz_date: &amz_date,
        }
        .authorization(&Request {
            method,
            path: &path,
            query,
            headers: &headers,
            payload_hash: &hash,
        });
        let q = sigv4::canonical_query(query);
        let url = if q.is_empty() {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}{path}?{q}")
        };
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            if *k != "host" {
                req = req.header(*k, *v);
            }
        }
        let req = req
            .header("authorization", auth)
            .body(HttpRequestBody::from(body))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| format!("{method} {url}: {}", super::chain_text(&e)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .bytes()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        Ok((status, bytes.to_vec()))
    }

    fn fail(what: &str, (status, body): &Answer) -> String {
        let text = String::from_utf8_lossy(body);
        let code = tag_text(&text, "Code").unwrap_or_default();
        let msg = tag_text(&text, "Message").unwrap_or_default();
        format!("{what}: the server answered {status} {code} {msg}")
            .trim()
            .to_string()
    }

    /// The bucket's Object Lock configuration (not enabled when the bucket
    /// has none).
    pub(super) async fn lock_config(&self) -> Result<LockConfig, String> {
        let a = self
            .call("GET", None, &[("object-lock", "")], vec![])
            .await?;
        // A server without Object Lock answers 404, 400 or 501 (or ignores
        // the query and lists the bucket, which parses as not enabled); only
        // a refusal is worth telling.
        if a.0 == 403 {
            return Err(Self::fail(
                "reading the bucket's Object Lock configuration",
                &a,
            ));
        }
        if a.0 != 200 {
            return Ok(LockConfig::default());
        }
        Ok(parse_lock_config(&String::from_utf8_lossy(&a.1)))
    }

    /// Set the bucket's default retention: every object written from now on
    /// is kept `days` days (by the server's clock) in `mode`.
    pub(super) async fn set_default_retention(&self, mode: &str, days: u32) -> Result<(), String> {
        let xml = format!(
            "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
             <Mode>{mode}</Mode><Days>{days}</Days></DefaultRetention></Rule></ObjectLockConfiguration>"
        );
        let a = self
            .call("PUT", None, &[("object-lock", "")], xml.into_bytes())
            .await?;
        if a.0 != 200 {
            return Err(Self::fail("setting the bucket's default retention", &a));
        }
        Ok(())
    }

    /// The retention of the current version of `key`: (mode, retain-until as
    /// the server wrote it, RFC 3339), or None when it has none.
    pub(super) async fn retention(&self, key: &str) -> Result<Option<(String, String)>, String> {
        let a = self
            .call("GET", Some(key), &[("retention", "")], vec![])
            .await?;
        if a.0 == 404 {
            return Ok(None);
        }
        if a.0 != 200 {
            return Err(Self::fail(&format!("reading the retention of {key}"), &a));
        }
        let xml = String::from_utf8_lossy(&a.1);
        Ok(tag_text(&xml, "Mode").zip(tag_text(&xml, "RetainUntilDate")))
    }

    /// Set the retention of the current version of `key` (the server refuses
    /// to shorten a COMPLIANCE one).
    pub(super) async fn set_retention(
        &self,
        key: &str,
        mode: &str,
        until: &str,
    ) -> Result<(), String> {
        let xml = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode}</Mode>\
             <RetainUntilDate>{until}</RetainUntilDate></Retention>"
        );
        let a = self
            .call("PUT", Some(key), &[("retention", "")], xml.into_bytes())
            .await?;
        if a.0 != 200 && a.0 != 204 {
            return Err(Self::fail(&format!("extending the retention of {key}"), &a));
        }
        Ok(())
    }

    /// Every version and delete marker under `prefix`.
    pub(super) async fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, String> {
        let mut out = Vec::new();
        let (mut key_marker, mut vid_marker) = (String::new(), String::new());
        loop {
            let mut q: Vec<(&str, &str)> = vec![("versions", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", &key_marker));
                q.push(("version-id-marker", &vid_marker));
            }
            let a = self.call("GET", None, &q, vec![]).await?;
            // A server without versioning (Garage) keeps no versions to hide.
            if a.0 == 501 {
                return Ok(Vec::new());
            }
            if a.0 != 200 {
                return Err(Self::fail("listing object versions", &a));
            }
            let page = parse_versions(&String::from_utf8_lossy(&a.1))?;
            out.extend(page.versions);
            match page.next {
                Some((k, v)) if !k.is_empty() => {
                    key_marker = k;
                    vid_marker = v;
                }
                _ => return Ok(out),
            }
        }
    }

    /// Delete one version (or delete marker) of `key`.
    pub(super) async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), String> {
        let a = self
            .call("DELETE", Some(key), &[("versionId", version_id)], vec![])
            .await?;
        if a.0 != 204 && a.0 != 200 {
            return Err(Self::fail(
                &format!("deleting version {version_id} of {key}"),
                &a,
            ));
        }
        Ok(())
    }
}

/// Keys whose latest entry is a delete marker while a real version exists,
/// with the version ids of all their delete markers (removing every marker
/// makes the newest real version current again, whatever the listing order).
pub(super) fn hidden(versions: Vec<ObjectVersion>) -> Vec<(String, Vec<String>)> {
    let mut by_key: std::collections::BTreeMap<String, (bool, bool, Vec<String>)> =
        Default::default();
    for v in versions {
        let e = by_key.entry(v.key).or_default();
        if v.delete_marker {
            e.2.push(v.version_id);
            e.0 |= v.is_latest;
        } else {
            e.1 = true;
        }
    }
    by_key
        .into_iter()
        .filter(|(_, (latest_is_marker, has_real, _))| *latest_is_marker && *has_real)
        .map(|(k, (_, _, markers))| (k, markers))
        .collect()
}

/// The text of the first element named `name`.
fn tag_text(xml: &str, name: &str) -> Option<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut inside = false;
    loop {
        match r.read_event().ok()? {
            Event::Start(e) => inside = e.local_name().as_ref() == name.as_bytes(),
            Event::Text(t) if inside => return t.decode().ok().map(|s| s.into_owned()),
            Event::End(_) => inside = false,
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn parse_lock_config(xml: &str) -> LockConfig {
    let enabled = tag_text(xml, "ObjectLockEnabled").as_deref() == Some("Enabled");
    let mode = tag_text(xml, "Mode");
    let days = tag_text(xml, "Days")
        .and_then(|d| d.trim().parse().ok())
        .or_else(|| {
            tag_text(xml, "Years")
                .and_then(|y| y.trim().parse::<u32>().ok())
                .map(|y| y.saturating_mul(365))
        });
    LockConfig {
        enabled,
        default_retention: mode.zip(days),
    }
}

struct VersionPage {
    versions: Vec<ObjectVersion>,
    /// (NextKeyMarker, NextVersionIdMarker) when truncated.
    next: Option<(String, String)>,
}

fn parse_versions(xml: &str) -> Result<VersionPage, String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut page = VersionPage {
        versions: Vec::new(),
        next: None,
    };
    let (mut truncated, mut nk, mut nv) = (false, String::new(), String::new());
    let mut cur: Option<ObjectVersion> = None;
    let mut field = String::new();
    loop {
        let ev = r
            .read_event()
            .map_err(|e| format!("a version listing that is not XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "Version" | "DeleteMarker" => {
                        cur = Some(ObjectVersion {
                            delete_marker: name == "DeleteMarker",
                            ..Default::default()
                        })
                    }
                    _ => field = name,
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?.into_owned();
                match (cur.as_mut(), field.as_str()) {
                    (Some(v), "Key") => v.key.push_str(&text),
                    (Some(v), "VersionId") => v.version_id.push_str(&text),
                    (Some(v), "IsLatest") => v.is_latest = text.trim() == "true",
                    (None, "IsTruncated") => truncated = text.trim() == "true",
                    (None, "NextKeyMarker") => nk.push_str(&text),
                    (None, "NextVersionIdMarker") => nv.push_str(&text),
                    _ => {}
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                if name.as_ref() == b"Version" || name.as_ref() == b"DeleteMarker" {
                    if let Some(v) = cur.take() {
                        page.versions.push(v);
                    }
                }
                field.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if truncated {
        page.next = Some((nk, nv));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_config() {
        let c = parse_lock_config(
            "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>\
             <DefaultRetention><Mode>GOVERNANCE</Mode><Days>30</Days></DefaultRetention></Rule>\
             </ObjectLockConfiguration>",
        );
        assert_eq!(
            c,
            LockConfig {
                enabled: true,
                default_retention: Some(("GOVERNANCE".into(), 30))
            }
        );
        let c = parse_lock_config(
            "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>",
        );
        assert_eq!((c.enabled, c.default_retention), (true, None));
    }

    #[test]
    fn versions() {
        let p = parse_versions(
            "<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>b</NextKeyMarker>\
             <NextVersionIdMarker>v9</NextVersionIdMarker>\
             <DeleteMarker><Key>a/obj</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest></DeleteMarker>\
             <Version><Key>a/obj</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>\
             <ETag>&#34;x&#34;</ETag></Version></ListVersionsResult>",
        )
        .unwrap();
        assert_eq!(p.next, Some(("b".into(), "v9".into())));
        assert_eq!(p.versions.len(), 2);
        assert!(p.versions[0].delete_marker && p.versions[0].is_latest);
        assert_eq!(p.versions[1].version_id, "v1");
        assert!(!p.versions[1].delete_marker && !p.versions[1].is_latest);
        let v = |key: &str, id: &str, latest: bool, marker: bool| ObjectVersion {
            key: key.into(),
            version_id: id.into(),
            is_latest: latest,
            delete_marker: marker,
        };
        // hidden: a marker on top; not hidden: deleted for good (markers
        // only), or a marker under a newer real version.
        let h = hidden(vec![
            v("a", "m2", true, true),
            v("a", "v1", false, false),
            v("a", "m0", false, true),
            v("b", "m1", true, true),
            v("c", "v3", true, false),
            v("c", "m2", false, true),
            v("c", "v1", false, false),
        ]);
        assert_eq!(
            h,
            vec![("a".to_string(), vec!["m2".to_string(), "m0".to_string()])]
        );
    }
}
