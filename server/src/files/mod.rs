//! Attachments' pure parts: what a file is (from its bytes), which kinds a site accepts,
//! signed links, thumbnails and the removal of location metadata. The use cases (who may
//! upload and fetch) are `core/files.rs`; the HTTP routes `http/files.rs`; the bytes live in
//! a [`blob::BlobStore`].

pub mod blob;

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wsmschat::v1;

/// Bytes of a file's start kept to decide its type.
pub const SNIFF_BYTES: usize = 8 * 1024;
/// Largest side of a thumbnail, pixels.
pub const THUMB_SIDE: u32 = 320;
/// Images larger than this are stored and served as downloads, not decoded (no thumbnail).
pub const MAX_DECODE_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Images with more pixels than this are not decoded (a small file can claim a huge size).
pub const MAX_DECODE_PIXELS: u64 = 80_000_000;
/// How long a signed link works, at least (links are rounded up to `LINK_BUCKET_MS`, so the
/// same file gets the same link for a while and browsers cache it).
pub const LINK_TTL_MS: i64 = 60 * 60 * 1000;
const LINK_BUCKET_MS: i64 = 5 * 60 * 1000;
/// Default largest file (bytes) and the most a site may allow.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
pub const MAX_FILE_BYTES_CAP: u64 = 1024 * 1024 * 1024;
/// Files in one message at most.
pub const MAX_FILES_PER_MESSAGE: usize = 10;
/// Longest file name kept, bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The site's largest file in force.
pub fn max_file_bytes(site: &v1::Site) -> u64 {
    match site.max_file_bytes {
        0 => DEFAULT_MAX_FILE_BYTES,
        n => n.min(MAX_FILE_BYTES_CAP),
    }
}

/// The site's accepted kinds in force.
pub fn file_kinds(site: &v1::Site) -> v1::FileKinds {
    match v1::FileKinds::try_from(site.file_kinds).unwrap_or_default() {
        v1::FileKinds::Unspecified => v1::FileKinds::Documents,
        k => k,
    }
}

/// What a file is, for the site's rules and for how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// PNG, JPEG, GIF, WebP: decoded for a thumbnail, served inline.
    Raster,
    /// Other images (HEIC, TIFF, BMP, AVIF, ICO): allowed as images, served as downloads.
    OtherImage,
    /// PDF, text, office documents, archives.
    Document,
    /// Anything else (including HTML, SVG, XML, scripts, executables, media).
    Other,
}

impl Class {
    /// Whether a site with `kinds` accepts it.
    pub fn allowed(self, kinds: v1::FileKinds) -> bool {
        match kinds {
            v1::FileKinds::None => false,
            v1::FileKinds::Images => matches!(self, Class::Raster | Class::OtherImage),
            v1::FileKinds::Unspecified | v1::FileKinds::Documents => self != Class::Other,
            v1::FileKinds::Any => true,
        }
    }
}

/// The kinds a site accepts, for a human.
pub fn kinds_text(kinds: v1::FileKinds) -> &'static str {
    match kinds {
        v1::FileKinds::None => "no files",
        v1::FileKinds::Images => "images (PNG, JPEG, GIF, WebP and other image formats)",
        v1::FileKinds::Unspecified | v1::FileKinds::Documents => {
            "images and documents (PDF, text, office documents, archives)"
        }
        v1::FileKinds::Any => "any file",
    }
}

/// The content type and class of a file from its first bytes (`head`, up to [`SNIFF_BYTES`];
/// `complete` when that is the whole file). The uploader's claim is never asked.
pub fn sniff(head: &[u8], complete: bool) -> (String, Class) {
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type();
        let class = match mime {
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Class::Raster,
            m if m.starts_with("image/") => Class::OtherImage,
            "application/pdf"
            | "application/rtf"
            | "application/zip"
            | "application/gzip"
            | "application/x-7z-compressed"
            | "application/vnd.rar"
            | "application/x-tar"
            | "application/msword"
            | "application/vnd.ms-excel"
            | "application/vnd.ms-powerpoint"
            | "application/epub+zip" => Class::Document,
            m if m.starts_with("application/vnd.openxmlformats-officedocument")
                || m.starts_with("application/vnd.oasis.opendocument") =>
            {
                Class::Document
            }
            _ => Class::Other,
        };
        // infer's text matchers (html, xml, shell) are "Other" by the rule above.
        return (mime.to_owned(), class);
    }
    if looks_like_text(head, complete) {
        let lower: Vec<u8> = head
            .iter()
            .take(1024)
            .map(|b| b.to_ascii_lowercase())
            .collect();
        let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
        // Markup that a browser would run: never "text/plain" with an inline disposition.
        if has(b"<svg") {
            return ("image/svg+xml".into(), Class::Other);
        }
        if has(b"<html") || has(b"<!doctype") || has(b"<script") || has(b"<body") {
            return ("text/html".into(), Class::Other);
        }
        if has(b"<?xml") {
            return ("application/xml".into(), Class::Other);
        }
        return ("text/plain; charset=utf-8".into(), Class::Document);
    }
    ("application/octet-stream".into(), Class::Other)
}

/// UTF-8 without NULs (a character cut at the end of `head` is fine unless it is the end).
fn looks_like_text(head: &[u8], complete: bool) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// A file name as kept: the last path part, no control characters, at most
/// [`MAX_NAME_BYTES`]; "file" when nothing is left.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::new();
    for c in last.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim().trim_start_matches('.').to_owned();
    if out.is_empty() { "file".into() } else { out }
}

/// `Content-Disposition` for a download or an inline image, with the name in both forms
/// (RFC 6266: an ASCII fallback and the UTF-8 `filename*`).
pub fn content_disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded =
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string();
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Which bytes of a file a link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "o",
            Variant::Thumbnail => "t",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "o" => Some(Variant::Original),
            "t" => Some(Variant::Thumbnail),
            _ => None,
        }
    }

    /// The blob key of upload `id`'s bytes.
    pub fn key(self, id: &str) -> String {
        match self {
            Variant::Original => id.to_owned(),
            Variant::Thumbnail => format!("{id}.t"),
        }
    }
}

/// Signs and checks file links with a key every node shares (stored in the database).
#[derive(Default)]
pub struct Signer {
    key: OnceLock<Vec<u8>>,
}

impl Signer {
    /// Sets the key (once, at start).
    pub fn set_key(&self, key: &[u8]) {
        let _ = self.key.set(key.to_vec());
    }

    fn mac(&self, id: &str, variant: Variant, expires: i64) -> Option<String> {
        let key = self.key.get()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("{id}\n{}\n{expires}", variant.as_str()).as_bytes());
        let tag = mac.finalize().into_bytes();
        use base64::Engine as _;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..18]))
    }

    /// A signed token for `purpose` (domain separation) carrying `fields` (no '.' or '\n' is
    /// needed in them: they are base64-encoded), valid until `expires` (ms; 0: no expiry).
    /// None before the key is set.
    pub fn token(&self, purpose: &str, fields: &[&str], expires: i64) -> Option<String> {
        use base64::Engine as _;
        let key = self.key.get()?;
        let body = format!("{}\n{expires}", fields.join("\n"));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.encode(body.as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("token:{purpose}\n{payload}").as_bytes());
        let tag = mac.finalize().into_bytes();
        Some(format!("{payload}.{}", b64.encode(&tag[..18])))
    }

    /// HMAC-SHA256 of `data` for `purpose` (domain separation), for compact tokens of a
    /// caller's own layout. None before the key is set.
    pub fn mac_for(&self, purpose: &str, data: &[u8]) -> Option<[u8; 32]> {
        let key = self.key.get()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("raw:{purpose}\n").as_bytes());
        mac.update(data);
        Some(mac.finalize().into_bytes().into())
    }

    /// The fields of a token of this server for `purpose` that has not expired at `now`.
    pub fn open_token(&self, purpose: &str, token: &str, now: i64) -> Option<Vec<String>> {
        use base64::Engine as _;
        use subtle::ConstantTimeEq;
        let key = self.key.get()?;
        let (payload, sig) = token.split_once('.')?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(format!("token:{purpose}\n{payload}").as_bytes());
        let tag = mac.finalize().into_bytes();
        if !bool::from(b64.encode(&tag[..18]).as_bytes().ct_eq(sig.as_bytes())) {
            return None;
        }
        let body = String::from_utf8(b64.decode(payload).ok()?).ok()?;
        let mut fields: Vec<String> = body.split('\n').map(str::to_owned).collect();
        let expires: i64 = fields.pop()?.parse().ok()?;
        if expires != 0 && expires < now {
            return None;
        }
        Some(fields)
    }

    /// The path of a link to `id` valid until about `now + LINK_TTL_MS` (rounded up), and
    /// that time. None before the key is set.
    pub fn link(&self, id: &str, variant: Variant, now: i64) -> Option<(String, i64)> {
        let expires = (now + LINK_TTL_MS + LINK_BUCKET_MS - 1) / LINK_BUCKET_MS * LINK_BUCKET_MS;
        let sig = self.mac(id, variant, expires)?;
        Some((
            format!("/files/{id}/{}?e={expires}&s={sig}", variant.as_str()),
            expires,
        ))
    }

    /// Whether `sig` is this server's signature of the link and it has not expired at `now`.
    pub fn verify(&self, id: &str, variant: Variant, expires: i64, sig: &str, now: i64) -> bool {
        use subtle::ConstantTimeEq;
        if expires < now {
            return false;
        }
        let Some(expected) = self.mac(id, variant, expires) else {
            return false;
        };
        bool::from(expected.as_bytes().ct_eq(sig.as_bytes()))
    }

    /// Fills an attachment's links (relative to `base`, the server's public URL or "").
    pub fn sign(&self, a: &mut v1::Attachment, base: &str, now: i64) {
        if a.deleted {
            a.url.clear();
            a.thumbnail_url.clear();
            return;
        }
        if let Some((path, expires)) = self.link(&a.id, Variant::Original, now) {
            a.url = format!("{base}{path}");
            a.urls_expire_at_ms = expires;
        }
        if a.has_thumbnail {
            if let Some((path, _)) = self.link(&a.id, Variant::Thumbnail, now) {
                a.thumbnail_url = format!("{base}{path}");
            }
        }
    }

    /// Signs every attachment of a message.
    pub fn sign_message(&self, m: &mut v1::Message, base: &str, now: i64) {
        for a in &mut m.attachments {
            self.sign(a, base, now);
        }
    }
}

/// What decoding an image gave: its displayed size and a thumbnail.
#[derive(Debug)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    /// The thumbnail (JPEG, or PNG for images with transparency) and its content type.
    pub thumbnail: Option<(Vec<u8>, &'static str)>,
}

/// Decodes an image (bounded in pixels and memory) for its displayed size (after the EXIF
/// orientation, as browsers show it) and a thumbnail. Blocking: run on a blocking thread.
pub fn inspect_image(bytes: &[u8]) -> Option<ImageInfo> {
    use image::ImageDecoder as _;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().ok()?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 || w as u64 * h as u64 > MAX_DECODE_PIXELS {
        return None;
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).ok()?;
    img.apply_orientation(orientation);
    let (width, height) = (img.width(), img.height());
    let thumb = img.thumbnail(THUMB_SIDE, THUMB_SIDE);
    let mut out = std::io::Cursor::new(Vec::new());
    // PNG only where transparency shows (many screenshots carry an all-opaque alpha channel).
    let transparent = thumb.color().has_alpha() && thumb.to_rgba8().pixels().any(|p| p.0[3] < 255);
    let thumbnail = if transparent {
        thumb
            .write_to(&mut out, image::ImageFormat::Png)
            .ok()
            .map(|_| (out.into_inner(), "image/png"))
    } else {
        let rgb = image::DynamicImage::ImageRgb8(thumb.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
        rgb.write_with_encoder(encoder)
            .ok()
            .map(|_| (out.into_inner(), "image/jpeg"))
    };
    Some(ImageInfo {
        width,
        height,
        thumbnail,
    })
}

/// Removes location metadata from a JPEG's header segments: the GPS directory of its EXIF
/// block is emptied in place (orientation and the rest stay, so photos still show upright)
/// and XMP blocks (which can repeat the location) are dropped. `header` is the file up to its
/// first scan (SOS); returns the new header, or None when nothing had to change or the
/// header is not understood (then the file is kept as it is).
pub fn strip_jpeg_location(header: &[u8]) -> Option<Vec<u8>> {
    if header.len() < 4 || header[0] != 0xFF || header[1] != 0xD8 {
        return None;
    }
    let mut out = Vec::with_capacity(header.len());
    out.extend_from_slice(&header[..2]);
    let mut i = 2;
    let mut changed = false;
    while i + 4 <= header.len() {
        if header[i] != 0xFF {
            return None;
        }
        let marker = header[i + 1];
        if marker == 0xDA {
            // Start of scan: the rest is image data.
            out.extend_from_slice(&header[i..]);
            return changed.then_some(out);
        }
        let len = u16::from_be_bytes([header[i + 2], header[i + 3]]) as usize;
        let end = i + 2 + len;
        if len < 2 || end > header.len() {
            return None;
        }
        let body = &header[i + 4..end];
        if marker == 0xE1 && body.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
            changed = true;
        } else if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            let mut seg = header[i..end].to_vec();
            if clear_gps(&mut seg[4 + 6..]) {
                changed = true;
            }
            out.extend_from_slice(&seg);
        } else {
            out.extend_from_slice(&header[i..end]);
        }
        i = end;
    }
    None
}

/// Empties the GPS directory of a TIFF block (EXIF): its entries and their values are zeroed
/// and its entry count set to 0. True when there was one.
fn clear_gps(tiff: &mut [u8]) -> bool {
    if tiff.len() < 8 {
        return false;
    }
    let le = match &tiff[..2] {
        b"II" => true,
        b"MM" => false,
        _ => return false,
    };
    let u16_at = |t: &[u8], o: usize| -> Option<u16> {
        let b = t.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |t: &[u8], o: usize| -> Option<u32> {
        let b = t.get(o..o + 4)?;
        Some(if le {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let Some(ifd0) = u32_at(tiff, 4).map(|v| v as usize) else {
        return false;
    };
    let Some(n) = u16_at(tiff, ifd0) else {
        return false;
    };
    let mut gps = None;
    for e in 0..n as usize {
        let at = ifd0 + 2 + e * 12;
        if u16_at(tiff, at) == Some(0x8825) {
            gps = u32_at(tiff, at + 8).map(|v| v as usize);
        }
    }
    let Some(gps) = gps else { return false };
    let Some(count) = u16_at(tiff, gps).filter(|&c| c > 0) else {
        return false;
    };
    // Byte sizes of the TIFF field types.
    let size_of = |ty: u16| -> usize {
        match ty {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => 0,
        }
    };
    for e in 0..count as usize {
        let at = gps + 2 + e * 12;
        let (Some(ty), Some(cnt), Some(off)) = (
            u16_at(tiff, at + 2),
            u32_at(tiff, at + 4),
            u32_at(tiff, at + 8),
        ) else {
            break;
        };
        let bytes = size_of(ty).saturating_mul(cnt as usize);
        if bytes > 4 {
            let (start, end) = (off as usize, (off as usize).saturating_add(bytes));
            if end <= tiff.len() {
                tiff[start..end].fill(0);
            }
        }
        if let Some(entry) = tiff.get_mut(at..at + 12) {
            entry.fill(0);
        }
    }
    if let Some(c) = tiff.get_mut(gps..gps + 2) {
        c.fill(0);
    }
    true
}

/// JPEG segments for tests: an EXIF block (orientation 6 and a GPS directory whose latitude
/// holds the little-endian u32 1234) and an XMP block naming a GPS latitude.
#[doc(hidden)]
pub fn sample_gps_exif_segment() -> Vec<u8> {
    // TIFF, little endian: IFD0 at 8 with 2 entries (orientation, GPS pointer at 38);
    // the GPS IFD with 1 entry (latitude: 3 rationals = 24 bytes at 56).
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes()); // orientation
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&0x8825u16.to_le_bytes()); // GPS IFD pointer
    t.extend_from_slice(&4u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes()); // next IFD
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0002u16.to_le_bytes()); // GPSLatitude
    t.extend_from_slice(&5u16.to_le_bytes());
    t.extend_from_slice(&3u32.to_le_bytes());
    t.extend_from_slice(&56u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for v in [52u32, 1, 31, 1, 1234, 100] {
        t.extend_from_slice(&v.to_le_bytes());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&t);
    let mut h = vec![0xFF, 0xE1];
    h.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    h.extend_from_slice(&app1);
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta exif:GPSLatitude=\"52,31\"/>";
    h.extend_from_slice(&[0xFF, 0xE1]);
    h.extend_from_slice(&((xmp.len() + 2) as u16).to_be_bytes());
    h.extend_from_slice(xmp);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png, false), ("image/png".into(), Class::Raster));
        assert_eq!(sniff(b"%PDF-1.7\n", false).1, Class::Document);
        assert_eq!(
            sniff(b"hello, world\n", true),
            ("text/plain; charset=utf-8".into(), Class::Document)
        );
        assert_eq!(sniff(b"<svg xmlns=...", true).1, Class::Other);
        assert_eq!(sniff(b"  <!DOCTYPE html><p>x", true).1, Class::Other);
        assert_eq!(sniff(b"\0\x01\x02binary", true).1, Class::Other);
        assert!(!Class::Other.allowed(v1::FileKinds::Documents));
        assert!(Class::Other.allowed(v1::FileKinds::Any));
        assert!(!Class::Document.allowed(v1::FileKinds::Images));
        assert!(!Class::Raster.allowed(v1::FileKinds::None));
    }

    #[test]
    fn names_lose_paths_and_controls() {
        assert_eq!(clean_name("C:\\Users\\me\\invoice.pdf"), "invoice.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\nb\u{7}.txt"), "ab.txt");
        assert_eq!(clean_name("..."), "file");
        assert_eq!(clean_name(&"é".repeat(300)).len(), 254);
        let cd = content_disposition(false, "Rechnung März \"1\".pdf");
        assert!(cd.starts_with("attachment; filename=\"Rechnung M_rz _1_.pdf\""));
        assert!(cd.contains("filename*=UTF-8''Rechnung%20M%C3%A4rz%20%221%22%2Epdf"));
    }

    #[test]
    fn links_verify_until_they_expire_and_not_when_forged() {
        let s = Signer::default();
        assert!(s.link("f_1", Variant::Original, 0).is_none());
        s.set_key(b"k");
        let now = 1_000_000_000;
        let (path, exp) = s.link("f_1", Variant::Original, now).unwrap();
        assert!(exp >= now + LINK_TTL_MS);
        let sig = path.rsplit("s=").next().unwrap();
        assert!(s.verify("f_1", Variant::Original, exp, sig, now));
        assert!(!s.verify("f_1", Variant::Original, exp, sig, exp + 1));
        assert!(!s.verify("f_2", Variant::Original, exp, sig, now));
        assert!(!s.verify("f_1", Variant::Thumbnail, exp, sig, now));
        assert!(!s.verify("f_1", Variant::Original, exp + 1, sig, now));
        let other = Signer::default();
        other.set_key(b"other");
        assert!(!other.verify("f_1", Variant::Original, exp, sig, now));
    }

    fn jpeg_header_with_gps() -> Vec<u8> {
        let mut h = vec![0xFF, 0xD8];
        h.extend_from_slice(&sample_gps_exif_segment());
        h.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22]);
        h
    }

    #[test]
    fn location_leaves_a_jpeg_and_its_orientation_stays() {
        let h = jpeg_header_with_gps();
        let out = strip_jpeg_location(&h).unwrap();
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(find(&h, &1234u32.to_le_bytes()));
        assert!(!find(&out, &1234u32.to_le_bytes()), "latitude gone");
        assert!(!find(&out, b"GPSLatitude"), "XMP gone");
        assert!(
            find(&out, &[0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0]),
            "orientation kept"
        );
        assert!(out.ends_with(&[0xFF, 0xDA, 0x00, 0x02, 0x11, 0x22]));
        assert_eq!(strip_jpeg_location(&out), None, "nothing left to strip");
        assert_eq!(strip_jpeg_location(b"not a jpeg"), None);
    }

    #[test]
    fn an_image_gets_its_size_and_a_thumbnail() {
        let img = image::RgbImage::from_fn(800, 400, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let info = inspect_image(png.get_ref()).unwrap();
        assert_eq!((info.width, info.height), (800, 400));
        let (thumb, ty) = info.thumbnail.unwrap();
        assert_eq!(ty, "image/jpeg");
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        assert!(inspect_image(b"\x89PNG\r\n\x1a\ngarbage").is_none());
    }
}
