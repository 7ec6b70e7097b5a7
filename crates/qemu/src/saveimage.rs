//! The file `virsh save` writes and `virsh restore` reads: a header, the domain's XML, and
//! QEMU's migration stream from a page-aligned offset on.
//!
//! ```text
//! 0   magic "VireoSaveImage\n\0"       16 bytes
//! 16  version (1)                      u32, big-endian
//! 20  length of the XML                u32, big-endian
//! 24  the guest was running            u32, big-endian (0 or 1)
//! 28  where the stream starts, in 4 KiB u32, big-endian
//! 32  the XML (UTF-8), then zeros up to the stream
//! …   QEMU's migration stream
//! ```
//!
//! A new image leaves at least 4 KiB free after the XML, so that `save-image-define` can
//! put a somewhat longer definition in place.
//!
//! The format is Vireo's own (libvirt's save files carry libvirt's header); an image is
//! read back only by Vireo.

use std::io::{Read, Seek, SeekFrom, Write};

const MAGIC: &[u8; 16] = b"VireoSaveImage\n\0";
const VERSION: u32 = 1;
const HEADER: usize = 32;
const ALIGN: u64 = 4096;
/// The longest domain XML an image may carry.
const MAX_XML: u32 = 16 << 20;

/// What an image's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    pub xml: String,
    pub running: bool,
    /// Where QEMU's stream starts.
    pub data_offset: u64,
}

/// The room left after the XML of a new image.
const SLACK: usize = 4096;

/// The smallest page-aligned offset after a header and `xml_len` bytes of XML.
fn data_offset(xml_len: usize) -> u64 {
    ((HEADER + xml_len) as u64).div_ceil(ALIGN) * ALIGN
}

/// How long an XML the header of an image whose stream starts at `data_offset` holds.
fn xml_room(data_offset: u64) -> u64 {
    data_offset.saturating_sub(HEADER as u64)
}

/// Writes the header and XML at the start of `f`, and leaves `f` at the stream's offset:
/// `stream_at` when given (an existing image's, which the XML must fit before), else a
/// new one with room to spare.
pub fn write_header<F: Write + Seek>(
    f: &mut F,
    xml: &str,
    running: bool,
    stream_at: Option<u64>,
) -> std::io::Result<u64> {
    let len = u32::try_from(xml.len())
        .ok()
        .filter(|l| *l <= MAX_XML)
        .ok_or_else(|| std::io::Error::other("the domain XML is too long for a save image"))?;
    let at = match stream_at {
        Some(at) if at % ALIGN == 0 && at >= data_offset(xml.len()) => at,
        Some(at) => {
            return Err(std::io::Error::other(format!(
                "the XML ({} bytes) does not fit in the image (room for {})",
                xml.len(),
                xml_room(at)
            )))
        }
        None => data_offset(xml.len() + SLACK),
    };
    let pages = u32::try_from(at / ALIGN)
        .map_err(|_| std::io::Error::other("the save image header is too long"))?;
    let mut head = Vec::with_capacity(at as usize);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_be_bytes());
    head.extend_from_slice(&len.to_be_bytes());
    head.extend_from_slice(&u32::from(running).to_be_bytes());
    head.extend_from_slice(&pages.to_be_bytes());
    head.extend_from_slice(xml.as_bytes());
    head.resize(at as usize, 0);
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&head)?;
    Ok(at)
}

/// Reads an image's header, checking it before trusting any length in it; leaves `f` at
/// the stream's offset.
pub fn read_header<F: Read + Seek>(f: &mut F) -> Result<ImageHeader, String> {
    let mut head = [0u8; HEADER];
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    f.read_exact(&mut head)
        .map_err(|_| "not a Vireo save image (too short)".to_string())?;
    if &head[..16] != MAGIC {
        return Err("not a Vireo save image (bad magic)".into());
    }
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(16) != VERSION {
        return Err(format!("save image version {} is not supported", word(16)));
    }
    let len = word(20);
    if len == 0 || len > MAX_XML {
        return Err(format!("save image XML length {len} is not valid"));
    }
    let mut xml = vec![0u8; len as usize];
    f.read_exact(&mut xml)
        .map_err(|_| "the save image is truncated (XML)".to_string())?;
    let xml = String::from_utf8(xml).map_err(|_| "the save image XML is not UTF-8".to_string())?;
    let at = u64::from(word(28)) * ALIGN;
    if at < data_offset(len as usize) || at > data_offset(MAX_XML as usize + SLACK) {
        return Err(format!("save image stream offset {at} is not valid"));
    }
    let size = f.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    if size <= at {
        return Err("the save image has no machine state".into());
    }
    f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    Ok(ImageHeader {
        xml,
        running: word(24) != 0,
        data_offset: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn round_trip_and_refusals() {
        let mut c = Cursor::new(Vec::new());
        let at = write_header(&mut c, "<domain/>", true, None).unwrap();
        assert_eq!(at, 8192);
        c.seek(SeekFrom::Start(at)).unwrap();
        c.write_all(b"QEVM").unwrap();
        let h = read_header(&mut c).unwrap();
        assert_eq!(h.xml, "<domain/>");
        assert!(h.running);
        assert_eq!(c.position(), 8192);

        // A rewrite keeps the stream where it is, or says the XML does not fit.
        let longer = format!("<domain>{}</domain>", " ".repeat(6000));
        assert_eq!(write_header(&mut c, &longer, false, Some(at)).unwrap(), at);
        let h = read_header(&mut c).unwrap();
        assert_eq!(
            (h.xml.len(), h.running, h.data_offset),
            (longer.len(), false, at)
        );
        let much_longer = " ".repeat(9000);
        assert!(write_header(&mut c, &much_longer, false, Some(at))
            .unwrap_err()
            .to_string()
            .contains("does not fit"));

        let mut bytes = c.into_inner();
        let mut short = Cursor::new(bytes[..8192].to_vec());
        assert!(read_header(&mut short)
            .unwrap_err()
            .contains("no machine state"));
        bytes[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_header(&mut Cursor::new(bytes.clone()))
            .unwrap_err()
            .contains("length"));
        bytes[0] = b'X';
        assert!(read_header(&mut Cursor::new(bytes))
            .unwrap_err()
            .contains("magic"));
        assert!(read_header(&mut Cursor::new(vec![1, 2, 3])).is_err());
    }
}
