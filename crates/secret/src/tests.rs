use super::*;

const UUID: &str = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f";

fn driver(root: &Path) -> SecretDriver {
    SecretDriver::open(&root.join("etc"), &root.join("var"), EventBus::default()).unwrap()
}

fn vol_secret(path: &str, extra: &str) -> String {
    format!(
        "<secret {extra}><uuid>{UUID}</uuid><usage type='volume'><volume>{path}</volume></usage></secret>"
    )
}

#[test]
fn define_set_reload_and_undefine() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let h = d.define_xml(&vol_secret("/v/a.img", ""), 0).unwrap();
    assert_eq!(format_uuid(&h.uuid), UUID);
    assert_eq!((h.usage_type, h.usage_id.as_str()), (1, "/v/a.img"));
    d.set_value(&h, b"s3cr3t-passphrase", 0).unwrap();
    // On disk: the definition, and a value file that does not contain the value.
    let value_file = dir.path().join(format!("etc/secrets/{UUID}.value"));
    let sealed = fs::read(&value_file).unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
    drop(d);
    let d = driver(dir.path());
    let h2 = d.lookup_by_usage(1, "/v/a.img").unwrap();
    assert_eq!(h2, h);
    assert_eq!(&*d.get_value(&h, 0, false).unwrap(), b"s3cr3t-passphrase");
    // A redefinition keeps the value.
    d.define_xml(&vol_secret("/v/a.img", "private='no'"), 0)
        .unwrap();
    assert_eq!(&*d.get_value(&h, 0, false).unwrap(), b"s3cr3t-passphrase");
    d.undefine(&h).unwrap();
    assert!(!value_file.exists());
    assert!(matches!(
        d.lookup_by_uuid(&h.uuid),
        Err(SecretError::NoSecret(_))
    ));
    assert!(driver(dir.path()).list_all(0).unwrap().is_empty());
}

#[test]
fn ephemeral_secrets_never_touch_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let h = d
        .define_xml(
            "<secret ephemeral='yes'><usage type='tls'><name>t</name></usage></secret>",
            0,
        )
        .unwrap();
    d.set_value(&h, b"x", 0).unwrap();
    assert!(d.has_ephemeral());
    let files: Vec<_> = fs::read_dir(dir.path().join("etc/secrets"))
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
    assert!(driver(dir.path()).list_all(0).unwrap().is_empty());
}

#[test]
fn private_values_go_to_internal_callers_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let h = d
        .define_xml(&vol_secret("/v/p.img", "private='yes'"), 0)
        .unwrap();
    d.set_value(&h, b"v", 0).unwrap();
    let e = d.get_value(&h, 0, false).unwrap_err();
    assert_eq!(e.to_string(), "Invalid secret: secret is private");
    assert_eq!(&*d.get_value(&h, 0, true).unwrap(), b"v");
    let e = d
        .define_xml(&vol_secret("/v/p.img", "private='no'"), 0)
        .unwrap_err();
    assert!(e.to_string().contains("private flag"), "{e}");
}

#[test]
fn usage_is_unique_and_lists_filter() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    d.define_xml(&vol_secret("/v/a.img", "private='yes'"), 0)
        .unwrap();
    let e = d
        .define_xml(
            "<secret><usage type='volume'><volume>/v/a.img</volume></usage></secret>",
            0,
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("already defined for use with /v/a.img"),
        "{e}"
    );
    let e = d
        .define_xml(&vol_secret("/v/other.img", "private='yes'"), 0)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("is already defined for use with /v/a.img"),
        "{e}"
    );
    d.define_xml("<secret ephemeral='yes'/>", 0).unwrap();
    use list_flags::*;
    assert_eq!(d.list_all(0).unwrap().len(), 2);
    assert_eq!(d.list_all(EPHEMERAL).unwrap().len(), 1);
    assert_eq!(d.list_all(NO_EPHEMERAL).unwrap()[0].usage_id, "/v/a.img");
    assert_eq!(d.list_all(PRIVATE | NO_PRIVATE).unwrap().len(), 2);
    assert_eq!(d.list_all(NO_PRIVATE | NO_EPHEMERAL).unwrap().len(), 0);
    assert!(d.list_all(16).is_err());
    let e = d
        .get_value(&d.list_all(EPHEMERAL).unwrap()[0], 0, false)
        .unwrap_err();
    assert!(e.to_string().contains("does not have a value"), "{e}");
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    for xml in [
        "<secret",
        "<secret><usage type='volume'/></secret>",
        "<secret><uuid>zz</uuid></secret>",
        "<domain/>",
    ] {
        assert!(d.define_xml(xml, 0).is_err(), "{xml}");
    }
    assert!(d.list_all(0).unwrap().is_empty());
    let h = d.define_xml("<secret/>", 0).unwrap();
    assert!(d
        .set_value(&h, &vec![0u8; SECRET_VALUE_MAX + 1], 0)
        .is_err());
    assert!(d.set_value(&h, b"v", 1).is_err());
    assert!(d.get_value(&h, 0, false).is_err());
}

#[test]
fn events_carry_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::default();
    let mut rx = bus.subscribe();
    let d = SecretDriver::open(&dir.path().join("etc"), &dir.path().join("var"), bus).unwrap();
    let h = d.define_xml("<secret/>", 0).unwrap();
    d.set_value(&h, b"v", 0).unwrap();
    d.undefine(&h).unwrap();
    let got: Vec<(i32, i32)> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| (e.proc_, e.event_id))
        .collect();
    assert_eq!(got, [(382, 0), (383, 1), (382, 0)]);
}
