use super::*;

fn open(root: &Path) -> StorageDriver {
    StorageDriver::open(
        &root.join("etc"),
        &root.join("run"),
        &root.join("var"),
        EventBus::default(),
    )
    .unwrap()
}

fn vol_xml(name: &str, cap: &str, extra: &str) -> String {
    format!("<volume><name>{name}</name><capacity unit='M'>{cap}</capacity>{extra}</volume>")
}

#[test]
fn default_pool_at_first_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    let h = d.lookup_by_name("default").unwrap();
    assert!(d.is_active(&h).unwrap());
    assert!(d.autostart_of(&h).unwrap());
    assert!(dir.path().join("var/images").is_dir());
    d.destroy(&h).unwrap();
    d.undefine(&h).unwrap();
    drop(d);
    let d = open(dir.path());
    assert!(d.lookup_by_name("default").is_err());
}

#[test]
fn volumes_in_a_dir_pool() {
    vireo_hostprog::require("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    let h = d.lookup_by_name("default").unwrap();
    // Raw, sparse.
    let raw = d
        .vol_create_xml(
            &h,
            &vol_xml("base.img", "16", "<allocation>0</allocation>"),
            0,
        )
        .unwrap();
    let (ty, cap, alloc) = d.vol_info(&raw, 0).unwrap();
    assert_eq!((ty, cap), (0, 16 << 20));
    assert!(alloc < cap);
    // qcow2 overlay on it.
    let top = d
        .vol_create_xml(
            &h,
            &vol_xml(
                "top.qcow2",
                "32",
                &format!(
                    "<target><format type='qcow2'/></target><backingStore><path>{}</path></backingStore>",
                    raw.key
                ),
            ),
            0,
        )
        .unwrap();
    let xml = d.vol_xml_desc(&top, 0).unwrap();
    assert!(xml.contains("<format type='qcow2'/>"), "{xml}");
    assert!(xml.contains(&format!("<path>{}</path>", raw.key)), "{xml}");
    assert!(xml.contains("<backingStore>"), "{xml}");
    // A copy to raw, lookups, resize, wipe, delete.
    let copy = d
        .vol_create_xml_from(
            &h,
            &vol_xml("copy.raw", "1", "<target><format type='raw'/></target>"),
            &top,
            0,
        )
        .unwrap();
    assert_eq!(d.vol_info(&copy, 0).unwrap().1, 32 << 20);
    assert_eq!(d.vol_lookup_by_path(&copy.key).unwrap(), copy);
    assert_eq!(d.vol_lookup_by_key(&copy.key).unwrap(), copy);
    assert!(
        d.vol_resize(&copy, 1 << 20, 0).is_err(),
        "shrink needs the flag"
    );
    d.vol_resize(&copy, 1 << 20, resize_flags_shrink()).unwrap();
    assert_eq!(d.vol_info(&copy, 0).unwrap().1, 1 << 20);
    d.vol_wipe(&top, 0, 0).unwrap();
    assert!(d.vol_xml_desc(&top, 0).unwrap().contains("<backingStore>"));
    assert_eq!(d.list_volumes(&h).unwrap().len(), 3);
    // What is on disk is what a new daemon finds.
    drop(d);
    let d = open(dir.path());
    assert_eq!(d.list_volumes(&h).unwrap().len(), 3);
    for v in d.list_volumes(&h).unwrap() {
        d.vol_delete(&v, 0).unwrap();
    }
    assert!(d.list_volumes(&h).unwrap().is_empty());
}

fn resize_flags_shrink() -> u32 {
    vireo_proto::storage::resize_flags::SHRINK
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = open(dir.path());
    let h = d.lookup_by_name("default").unwrap();
    for bad in [
        vol_xml("../escape", "1", ""),
        vol_xml("a/b", "1", ""),
        "<volume><name>nocap</name></volume>".to_string(),
        vol_xml("x.vmdk", "1", "<target><format type='vmdk'/></target>"),
        vol_xml("huge", "1", "").replace("unit='M'>1<", "unit='E'>1000<"),
        vol_xml("big", "1", "").replace("unit='M'>1<", "unit='T'>1000<"),
    ] {
        assert!(d.vol_create_xml(&h, &bad, 0).is_err(), "{bad}");
    }
    assert!(d.list_volumes(&h).unwrap().is_empty());
    let files: Vec<_> = fs::read_dir(dir.path().join("var/images"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "{files:?}");
    d.vol_create_xml(&h, &vol_xml("v", "1", ""), 0).unwrap();
    let e = d.vol_create_xml(&h, &vol_xml("v", "1", ""), 0).unwrap_err();
    assert!(e.to_string().contains("exists already"), "{e}");
    // Pools: a second pool on the same target, an unknown type, a relative target.
    for bad in [
        format!(
            "<pool type='dir'><name>p2</name><target><path>{}</path></target></pool>",
            dir.path().join("var/images").display()
        ),
        "<pool type='iscsi'><name>p3</name><target><path>/x</path></target></pool>".to_string(),
        "<pool type='dir'><name>p4</name><target><path>rel</path></target></pool>".to_string(),
        "<pool type='dir'><name>../p5</name><target><path>/x</path></target></pool>".to_string(),
    ] {
        assert!(d.define_xml(&bad, 0).is_err(), "{bad}");
    }
    assert_eq!(d.list_all(0).unwrap().len(), 1);
}

#[test]
fn pool_lifecycle_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::default();
    let mut rx = bus.subscribe();
    let d = StorageDriver::open(
        &dir.path().join("etc"),
        &dir.path().join("run"),
        &dir.path().join("var"),
        bus,
    )
    .unwrap();
    while rx.try_recv().is_ok() {}
    let t = dir.path().join("p1");
    let h = d
        .define_xml(
            &format!(
                "<pool type='dir'><name>p1</name><target><path>{}</path></target></pool>",
                t.display()
            ),
            0,
        )
        .unwrap();
    assert!(d.create(&h, 0).is_err(), "not built yet");
    d.build(&h, 0).unwrap();
    d.create(&h, 0).unwrap();
    d.refresh(&h, 0).unwrap();
    assert!(d.undefine(&h).is_err(), "still active");
    d.destroy(&h).unwrap();
    d.delete(&h, 0).unwrap();
    assert!(!t.exists());
    d.undefine(&h).unwrap();
    use vireo_proto::storage::event::*;
    let mut lifecycle = Vec::new();
    let mut refreshes = 0;
    while let Ok(e) = rx.try_recv() {
        if e.event_id == ID_REFRESH {
            refreshes += 1;
        } else {
            let b: PoolEventLifecycleBody = vireo_xdr::from_bytes(&e.body).unwrap();
            assert_eq!(b.pool.name, "p1");
            lifecycle.push(b.event);
        }
    }
    assert_eq!(refreshes, 1);
    assert_eq!(
        lifecycle,
        [DEFINED, CREATED, STARTED, STOPPED, DELETED, UNDEFINED]
    );
    // Transient pools vanish when destroyed.
    let t2 = dir.path().join("p2");
    let h2 = d
        .create_xml(
            &format!(
                "<pool type='dir'><name>p2</name><target><path>{}</path></target></pool>",
                t2.display()
            ),
            1,
        )
        .unwrap();
    assert!(!d.is_persistent(&h2).unwrap());
    d.destroy(&h2).unwrap();
    assert!(d.lookup_by_name("p2").is_err());
}
