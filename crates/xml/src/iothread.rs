//! I/O threads: `<iothreads>`, `<iothreadids>` and `<cputune><iothreadpin>` — event-loop
//! threads of QEMU's own that virtio disks and virtio-scsi controllers can run their I/O
//! in (`<driver iothread='N'/>`), instead of QEMU's main loop.

use std::collections::BTreeSet;

use roxmltree::Node;

use crate::model::field;
use crate::util::{child, parse_int, text};
use crate::{xml_element, Writer, XmlError};

xml_element! {
    /// `<iothreadids><iothread id='N'/>`: one I/O thread (ids start at 1).
    pub struct IoThread {
        attr id: u32 = "id",
        /// Worker threads QEMU keeps for this thread's blocking calls (at least, at most).
        attr_opt thread_pool_min: i32 = "thread_pool_min",
        attr_opt thread_pool_max: i32 = "thread_pool_max",
    }
    check IoThread::check;
}

impl IoThread {
    /// A thread with id `id` and QEMU's defaults.
    pub fn new(id: u32) -> IoThread {
        IoThread {
            id,
            thread_pool_min: None,
            thread_pool_max: None,
        }
    }

    fn check(&mut self) -> Result<(), XmlError> {
        if self.id == 0 {
            return Err(XmlError::Invalid(
                "invalid iothread 'id' value '0': ids start at 1".into(),
            ));
        }
        check_pool(self.thread_pool_min, self.thread_pool_max)
    }
}

/// libvirt's rules for a thread pool's bounds: neither negative, the maximum not 0, the
/// minimum not above the maximum.
pub fn check_pool(min: Option<i32>, max: Option<i32>) -> Result<(), XmlError> {
    if min.is_some_and(|m| m < 0) || max.is_some_and(|m| m < 0) {
        return Err(XmlError::Invalid(
            "thread_pool_min and thread_pool_max must not be negative".into(),
        ));
    }
    if max == Some(0) {
        return Err(XmlError::Invalid(
            "value of 'thread_pool_max' must be a positive integer".into(),
        ));
    }
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return Err(XmlError::Invalid(format!(
                "thread_pool_min ({a}) must not be greater than thread_pool_max ({b})"
            )));
        }
    }
    Ok(())
}

xml_element! {
    /// `<cputune><iothreadpin iothread='N' cpuset='…'/>`.
    pub struct IoThreadPin {
        attr iothread: u32 = "iothread",
        attr cpuset: String = "cpuset",
    }
    check IoThreadPin::check;
}

impl IoThreadPin {
    fn check(&mut self) -> Result<(), XmlError> {
        self.cpuset = crate::format_cpuset(&crate::parse_cpuset(&self.cpuset)?);
        Ok(())
    }
}

/// A domain's I/O threads: those `<iothreadids>` names, then as many more as
/// `<iothreads>` counts (the lowest free ids, as libvirt fills them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoThreads {
    pub threads: Vec<IoThread>,
    /// Whether `<iothreadids>` is written (the definition named ids, or a thread was added
    /// by id since).
    pub ids_shown: bool,
}

impl IoThreads {
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&IoThread> {
        self.threads.iter().find(|t| t.id == id)
    }

    pub fn ids(&self) -> BTreeSet<u32> {
        self.threads.iter().map(|t| t.id).collect()
    }

    /// Adds thread `id`; false when it is there already.
    pub fn add(&mut self, t: IoThread) -> bool {
        if self.get(t.id).is_some() {
            return false;
        }
        self.threads.push(t);
        self.ids_shown = true;
        true
    }

    /// Removes thread `id`; false when there is none.
    pub fn remove(&mut self, id: u32) -> bool {
        let before = self.threads.len();
        self.threads.retain(|t| t.id != id);
        if self.threads.len() != before {
            self.ids_shown = true;
        }
        self.threads.len() != before
    }

    pub(crate) fn parse(root: Node) -> Result<IoThreads, XmlError> {
        let count: u32 = match child(root, "iothreads") {
            Some(n) => parse_int(text(n).trim(), "<iothreads>")?,
            None => 0,
        };
        let ids = child(root, "iothreadids");
        let mut threads: Vec<IoThread> = match ids {
            Some(n) => field::children_of(n, "iothread")?,
            None => Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for t in &threads {
            if !seen.insert(t.id) {
                return Err(XmlError::Invalid(format!(
                    "duplicate iothread id '{}' found",
                    t.id
                )));
            }
        }
        let mut next = 1u32;
        while (threads.len() as u64) < u64::from(count) {
            while seen.contains(&next) {
                next += 1;
            }
            seen.insert(next);
            threads.push(IoThread::new(next));
        }
        Ok(IoThreads {
            ids_shown: ids.is_some_and(|n| n.children().any(|c| c.is_element())),
            threads,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        if self.threads.is_empty() {
            return;
        }
        w.text_elem("iothreads", &self.threads.len().to_string());
        if self.ids_shown {
            w.elem("iothreadids").open();
            for t in &self.threads {
                crate::XmlElement::write_to(t, w, "iothread");
            }
            w.close("iothreadids");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Domain;

    fn dom(inner: &str) -> String {
        format!(
            "<domain type='qemu'><name>t</name><memory>65536</memory>{inner}\
             <os><type>hvm</type></os></domain>"
        )
    }

    #[test]
    fn a_count_fills_the_lowest_free_ids() {
        let d = Domain::parse_kept(&dom(
            "<iothreads>3</iothreads><iothreadids><iothread id='2'/></iothreadids>",
        ))
        .unwrap();
        let ids: Vec<u32> = d.iothreads.threads.iter().map(|t| t.id).collect();
        assert_eq!(ids, [2, 1, 3]);
        let out = d.format();
        assert!(out.contains("<iothreads>3</iothreads>"), "{out}");
        assert!(out.contains("<iothread id='3'/>"), "{out}");
        assert_eq!(Domain::parse(&out).unwrap(), d);
    }

    #[test]
    fn a_bare_count_stays_a_count() {
        let d = Domain::parse_kept(&dom("<iothreads>2</iothreads>")).unwrap();
        let out = d.format();
        assert!(out.contains("<iothreads>2</iothreads>"), "{out}");
        assert!(!out.contains("iothreadids"), "{out}");
    }

    #[test]
    fn pins_pools_and_disks_are_kept_and_checked() {
        let xml = dom("<iothreads>1</iothreads><iothreadids>\
             <iothread id='4' thread_pool_min='1' thread_pool_max='8'/></iothreadids>\
             <cputune><iothreadpin iothread='4' cpuset='0'/></cputune>\
             <devices><disk type='file'><driver name='qemu' iothread='4'/>\
             <source file='/x'/><target dev='vda'/></disk></devices>");
        let d = Domain::parse_kept(&xml).unwrap();
        assert_eq!(d.iothreads.threads[0].thread_pool_max, Some(8));
        assert_eq!(d.cputune.as_ref().unwrap().iothread(4), Some("0"));
        let out = d.format();
        assert!(
            out.contains("<iothreadpin iothread='4' cpuset='0'/>"),
            "{out}"
        );
        assert!(out.contains("iothread='4'/>"), "{out}");
        for bad in [
            xml.replace("iothread='4' cpuset", "iothread='5' cpuset"),
            xml.replace("name='qemu' iothread='4'", "name='qemu' iothread='9'"),
            xml.replace("thread_pool_min='1'", "thread_pool_min='9'"),
            xml.replace("thread_pool_max='8'", "thread_pool_max='0'"),
            xml.replace("<iothread id='4'", "<iothread id='0'"),
            xml.replace("</iothreadids>", "<iothread id='4'/></iothreadids>"),
        ] {
            assert!(Domain::parse(&bad).is_err(), "{bad}");
        }
    }
}
