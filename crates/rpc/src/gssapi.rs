//! SASL's GSSAPI mechanism (RFC 4752) with Kerberos, both sides, as libvirt's client and
//! server run it through cyrus-sasl in AUTH_SASL_START / STEP, and its security layer.
//!
//! GSS-API itself is MIT Kerberos' `libgssapi_krb5.so.2`, loaded when first needed (never
//! linked): a daemon built or run on a machine without it just does not offer GSSAPI.
//!
//! The exchange (server side): the client's context tokens are passed to
//! `gss_accept_sec_context` until the context is established; the server's last token (the
//! Kerberos AP-REP) goes back and the client answers it with an empty response; then the
//! server sends, protected for integrity, 4 bytes — the security layers it offers (1 none,
//! 2 integrity, 4 confidentiality) and the largest packet it accepts (24 bits) — and the
//! client answers, protected the same way, with the layer it chose, its own largest packet
//! and an authorization identity. On plain TCP only confidentiality is offered (libvirt
//! wants a layer of at least 56 bits there); where the transport is already secure, only
//! "none".

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use thiserror::Error;

use crate::layer::SecurityLayer;

/// The mechanism's name, as AUTH_SASL_INIT lists it.
pub const GSSAPI: &str = "GSSAPI";
/// The service libvirt's principals are named for: `libvirt/HOST@REALM`.
pub const SERVICE: &str = "libvirt";
/// The largest packet we accept under the layer (libvirt's and our announced buffer).
pub const MAX_BUFFER: u32 = 1 << 16;

const LAYER_NONE: u8 = 1;
const LAYER_INTEGRITY: u8 = 2;
const LAYER_CONFIDENTIALITY: u8 = 4;
/// The strength cyrus-sasl assumes when the library does not say (a single-DES key).
const FALLBACK_SSF: u32 = 56;

#[derive(Debug, Error)]
pub enum GssError {
    #[error("GSSAPI is not available: {0}")]
    Unavailable(String),
    #[error("{what}: {message}")]
    Gss { what: &'static str, message: String },
    #[error("GSSAPI protocol error: {0}")]
    Protocol(&'static str),
    #[error("{0}")]
    Refused(String),
}

#[allow(non_camel_case_types)]
mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    pub type OM_uint32 = u32;

    #[repr(C)]
    pub struct gss_buffer_desc {
        pub length: usize,
        pub value: *mut c_void,
    }

    #[repr(C)]
    pub struct gss_OID_desc {
        pub length: OM_uint32,
        pub elements: *mut c_void,
    }

    #[repr(C)]
    pub struct gss_buffer_set_desc {
        pub count: usize,
        pub elements: *mut gss_buffer_desc,
    }

    #[repr(C)]
    pub struct gss_key_value_element_desc {
        pub key: *const c_char,
        pub value: *const c_char,
    }

    #[repr(C)]
    pub struct gss_key_value_set_desc {
        pub count: OM_uint32,
        pub elements: *const gss_key_value_element_desc,
    }

    pub type gss_name_t = *mut c_void;
    pub type gss_ctx_id_t = *mut c_void;
    pub type gss_cred_id_t = *mut c_void;
    pub type gss_OID = *mut gss_OID_desc;

    pub const GSS_C_INDEFINITE: OM_uint32 = 0xffff_ffff;
    pub const GSS_C_ACCEPT: c_int = 2;
    pub const GSS_C_GSS_CODE: c_int = 1;
    pub const GSS_C_MECH_CODE: c_int = 2;
    pub const GSS_C_MUTUAL_FLAG: OM_uint32 = 2;
    pub const GSS_C_SEQUENCE_FLAG: OM_uint32 = 8;
    pub const GSS_C_CONF_FLAG: OM_uint32 = 16;
    pub const GSS_C_INTEG_FLAG: OM_uint32 = 32;
    pub const GSS_S_CONTINUE_NEEDED: OM_uint32 = 1;

    /// A routine or calling error (not merely supplementary information).
    pub fn is_error(major: OM_uint32) -> bool {
        major & 0xffff_0000 != 0
    }

    pub type AcquireCredFrom = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_name_t,
        OM_uint32,
        *mut c_void,
        c_int,
        *const gss_key_value_set_desc,
        *mut gss_cred_id_t,
        *mut c_void,
        *mut OM_uint32,
    ) -> OM_uint32;
    pub type AcceptSecContext = unsafe extern "C" fn(
        *mut OM_uint32,
        *mut gss_ctx_id_t,
        gss_cred_id_t,
        *mut gss_buffer_desc,
        *mut c_void,
        *mut gss_name_t,
        *mut gss_OID,
        *mut gss_buffer_desc,
        *mut OM_uint32,
        *mut OM_uint32,
        *mut gss_cred_id_t,
    ) -> OM_uint32;
    pub type InitSecContext = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_cred_id_t,
        *mut gss_ctx_id_t,
        gss_name_t,
        gss_OID,
        OM_uint32,
        OM_uint32,
        *mut c_void,
        *mut gss_buffer_desc,
        *mut gss_OID,
        *mut gss_buffer_desc,
        *mut OM_uint32,
        *mut OM_uint32,
    ) -> OM_uint32;
    pub type ImportName = unsafe extern "C" fn(
        *mut OM_uint32,
        *mut gss_buffer_desc,
        gss_OID,
        *mut gss_name_t,
    ) -> OM_uint32;
    pub type DisplayName = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_name_t,
        *mut gss_buffer_desc,
        *mut gss_OID,
    ) -> OM_uint32;
    pub type CompareName =
        unsafe extern "C" fn(*mut OM_uint32, gss_name_t, gss_name_t, *mut c_int) -> OM_uint32;
    pub type CanonicalizeName =
        unsafe extern "C" fn(*mut OM_uint32, gss_name_t, gss_OID, *mut gss_name_t) -> OM_uint32;
    pub type InquireContext = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_ctx_id_t,
        *mut gss_name_t,
        *mut gss_name_t,
        *mut OM_uint32,
        *mut gss_OID,
        *mut OM_uint32,
        *mut c_int,
        *mut c_int,
    ) -> OM_uint32;
    pub type Wrap = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_ctx_id_t,
        c_int,
        OM_uint32,
        *mut gss_buffer_desc,
        *mut c_int,
        *mut gss_buffer_desc,
    ) -> OM_uint32;
    pub type Unwrap = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_ctx_id_t,
        *mut gss_buffer_desc,
        *mut gss_buffer_desc,
        *mut c_int,
        *mut OM_uint32,
    ) -> OM_uint32;
    pub type WrapSizeLimit = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_ctx_id_t,
        c_int,
        OM_uint32,
        OM_uint32,
        *mut OM_uint32,
    ) -> OM_uint32;
    pub type InquireByOid = unsafe extern "C" fn(
        *mut OM_uint32,
        gss_ctx_id_t,
        gss_OID,
        *mut *mut gss_buffer_set_desc,
    ) -> OM_uint32;
    pub type ReleaseBufferSet =
        unsafe extern "C" fn(*mut OM_uint32, *mut *mut gss_buffer_set_desc) -> OM_uint32;
    pub type ReleaseBuffer =
        unsafe extern "C" fn(*mut OM_uint32, *mut gss_buffer_desc) -> OM_uint32;
    pub type ReleaseName = unsafe extern "C" fn(*mut OM_uint32, *mut gss_name_t) -> OM_uint32;
    pub type ReleaseCred = unsafe extern "C" fn(*mut OM_uint32, *mut gss_cred_id_t) -> OM_uint32;
    pub type DeleteSecContext =
        unsafe extern "C" fn(*mut OM_uint32, *mut gss_ctx_id_t, *mut gss_buffer_desc) -> OM_uint32;
    pub type DisplayStatus = unsafe extern "C" fn(
        *mut OM_uint32,
        OM_uint32,
        c_int,
        gss_OID,
        *mut OM_uint32,
        *mut gss_buffer_desc,
    ) -> OM_uint32;

    /// The library's entry points we use.
    pub struct Lib {
        pub acquire_cred_from: AcquireCredFrom,
        pub accept_sec_context: AcceptSecContext,
        pub init_sec_context: InitSecContext,
        pub import_name: ImportName,
        pub display_name: DisplayName,
        pub compare_name: CompareName,
        pub canonicalize_name: CanonicalizeName,
        pub inquire_context: InquireContext,
        pub wrap: Wrap,
        pub unwrap: Unwrap,
        pub wrap_size_limit: WrapSizeLimit,
        pub inquire_sec_context_by_oid: InquireByOid,
        pub release_buffer_set: ReleaseBufferSet,
        pub release_buffer: ReleaseBuffer,
        pub release_name: ReleaseName,
        pub release_cred: ReleaseCred,
        pub delete_sec_context: DeleteSecContext,
        pub display_status: DisplayStatus,
    }
}

use ffi::*;

/// The library file MIT Kerberos installs (Debian: libgssapi-krb5-2).
const LIBRARY: &str = "libgssapi_krb5.so.2";

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

fn load() -> Result<Lib, String> {
    let name = CString::new(LIBRARY).map_err(|e| e.to_string())?;
    // SAFETY: dlopen is given a valid NUL-terminated name; the handle is kept for the
    // life of the process (never dlclosed), so every symbol taken from it stays valid.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc, read
        // at once on this thread.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(format!("cannot load {LIBRARY}: {why}"));
    }
    let sym = |n: &str| -> Result<*mut c_void, String> {
        let c = CString::new(n).map_err(|e| e.to_string())?;
        // SAFETY: the handle is live (above) and the name NUL-terminated.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("{LIBRARY} has no {n}"))
        } else {
            Ok(p)
        }
    };
    macro_rules! f {
        ($name:literal, $ty:ty) => {{
            let p = sym($name)?;
            // SAFETY: `p` is the address of the C function $name, whose prototype (from
            // MIT's gssapi.h / gssapi_ext.h) is what $ty declares.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
        }};
    }
    Ok(Lib {
        acquire_cred_from: f!("gss_acquire_cred_from", AcquireCredFrom),
        accept_sec_context: f!("gss_accept_sec_context", AcceptSecContext),
        init_sec_context: f!("gss_init_sec_context", InitSecContext),
        import_name: f!("gss_import_name", ImportName),
        display_name: f!("gss_display_name", DisplayName),
        compare_name: f!("gss_compare_name", CompareName),
        canonicalize_name: f!("gss_canonicalize_name", CanonicalizeName),
        inquire_context: f!("gss_inquire_context", InquireContext),
        wrap: f!("gss_wrap", Wrap),
        unwrap: f!("gss_unwrap", Unwrap),
        wrap_size_limit: f!("gss_wrap_size_limit", WrapSizeLimit),
        inquire_sec_context_by_oid: f!("gss_inquire_sec_context_by_oid", InquireByOid),
        release_buffer_set: f!("gss_release_buffer_set", ReleaseBufferSet),
        release_buffer: f!("gss_release_buffer", ReleaseBuffer),
        release_name: f!("gss_release_name", ReleaseName),
        release_cred: f!("gss_release_cred", ReleaseCred),
        delete_sec_context: f!("gss_delete_sec_context", DeleteSecContext),
        display_status: f!("gss_display_status", DisplayStatus),
    })
}

fn lib() -> Result<&'static Lib, GssError> {
    LIB.get_or_init(load)
        .as_ref()
        .map_err(|e| GssError::Unavailable(e.clone()))
}

/// Whether the GSS-API library can be used here (loads it once).
pub fn available() -> Result<(), GssError> {
    lib().map(|_| ())
}

// OIDs (DER contents): the Kerberos mechanism 1.2.840.113554.1.2.2, the name types
// GSS_C_NT_HOSTBASED_SERVICE 1.2.840.113554.1.2.1.4 and GSS_C_NT_USER_NAME
// 1.2.840.113554.1.2.1.1, and GSS_C_SEC_CONTEXT_SASL_SSF 1.2.840.113554.1.2.2.5.15.
const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
const OID_NT_HOSTBASED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];
const OID_NT_USER: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x01];
const OID_SASL_SSF: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x05, 0x0f,
];

/// An OID descriptor over one of the constants above (the library only reads it).
fn oid(bytes: &'static [u8]) -> gss_OID_desc {
    gss_OID_desc {
        length: bytes.len() as u32,
        elements: bytes.as_ptr() as *mut c_void,
    }
}

/// A buffer descriptor the library only reads.
fn input(bytes: &[u8]) -> gss_buffer_desc {
    gss_buffer_desc {
        length: bytes.len(),
        value: bytes.as_ptr() as *mut c_void,
    }
}

fn empty_buffer() -> gss_buffer_desc {
    gss_buffer_desc {
        length: 0,
        value: std::ptr::null_mut(),
    }
}

/// Copies out and frees a buffer the library filled.
fn take(lib: &Lib, b: &mut gss_buffer_desc) -> Vec<u8> {
    let out = if b.value.is_null() || b.length == 0 {
        Vec::new()
    } else {
        // SAFETY: the library filled `b` with `length` readable bytes at `value`.
        unsafe { std::slice::from_raw_parts(b.value as *const u8, b.length) }.to_vec()
    };
    let mut minor = 0;
    // SAFETY: `b` was filled by the library (or is empty), and is released exactly once.
    unsafe { (lib.release_buffer)(&mut minor, b) };
    out
}

/// The library's words for a major/minor status.
fn status_text(lib: &Lib, major: OM_uint32, minor: OM_uint32) -> String {
    let mut parts = Vec::new();
    for (code, kind) in [(major, GSS_C_GSS_CODE), (minor, GSS_C_MECH_CODE)] {
        if code == 0 {
            continue;
        }
        let mut ctx: OM_uint32 = 0;
        // A bounded number of lines: the library's message context could in principle
        // never say it is done.
        for _ in 0..8 {
            let mut m = 0;
            let mut b = empty_buffer();
            let mut mech = oid(OID_KRB5);
            // SAFETY: every pointer is to a live local; the library fills `b`.
            let r =
                unsafe { (lib.display_status)(&mut m, code, kind, &mut mech, &mut ctx, &mut b) };
            if is_error(r) {
                break;
            }
            let text = String::from_utf8_lossy(&take(lib, &mut b)).into_owned();
            if !text.is_empty() {
                parts.push(text);
            }
            if ctx == 0 {
                break;
            }
        }
    }
    if parts.is_empty() {
        format!("GSS-API error {major:#x}/{minor}")
    } else {
        parts.join(": ")
    }
}

fn check(
    lib: &Lib,
    what: &'static str,
    major: OM_uint32,
    minor: OM_uint32,
) -> Result<(), GssError> {
    if is_error(major) {
        Err(GssError::Gss {
            what,
            message: status_text(lib, major, minor),
        })
    } else {
        Ok(())
    }
}

/// A name the library made.
struct Name {
    lib: &'static Lib,
    raw: gss_name_t,
}

impl Name {
    fn import(text: &str, kind: &'static [u8]) -> Result<Name, GssError> {
        let lib = lib()?;
        let mut minor = 0;
        let mut buf = input(text.as_bytes());
        let mut t = oid(kind);
        let mut raw: gss_name_t = std::ptr::null_mut();
        // SAFETY: the buffer and OID describe live memory the call only reads; `raw`
        // receives a name we release in Drop.
        let major = unsafe { (lib.import_name)(&mut minor, &mut buf, &mut t, &mut raw) };
        check(lib, "gss_import_name", major, minor)?;
        Ok(Name { lib, raw })
    }

    fn display(&self) -> Result<String, GssError> {
        let mut minor = 0;
        let mut b = empty_buffer();
        // SAFETY: `self.raw` is a live name; the library fills `b`.
        let major =
            unsafe { (self.lib.display_name)(&mut minor, self.raw, &mut b, std::ptr::null_mut()) };
        check(self.lib, "gss_display_name", major, minor)?;
        String::from_utf8(take(self.lib, &mut b))
            .map_err(|_| GssError::Protocol("a principal name that is not UTF-8"))
    }

    fn canonical(&self) -> Result<Name, GssError> {
        let mut minor = 0;
        let mut mech = oid(OID_KRB5);
        let mut raw: gss_name_t = std::ptr::null_mut();
        // SAFETY: `self.raw` is live; `raw` receives a new name released in Drop.
        let major =
            unsafe { (self.lib.canonicalize_name)(&mut minor, self.raw, &mut mech, &mut raw) };
        check(self.lib, "gss_canonicalize_name", major, minor)?;
        Ok(Name { lib: self.lib, raw })
    }

    fn same_as(&self, other: &Name) -> Result<bool, GssError> {
        let mut minor = 0;
        let mut equal: c_int = 0;
        // SAFETY: both names are live.
        let major = unsafe { (self.lib.compare_name)(&mut minor, self.raw, other.raw, &mut equal) };
        check(self.lib, "gss_compare_name", major, minor)?;
        Ok(equal != 0)
    }
}

// SAFETY: a name is only used through its owner (a `GssServer` or `GssClient`, whose
// methods take `&mut self`), one thread at a time; MIT's names may move between threads.
unsafe impl Send for Name {}

impl Drop for Name {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            let mut minor = 0;
            // SAFETY: the name is ours and released once.
            unsafe { (self.lib.release_name)(&mut minor, &mut self.raw) };
        }
    }
}

/// Credentials the library made.
struct Cred {
    lib: &'static Lib,
    raw: gss_cred_id_t,
}

impl Cred {
    /// The acceptor credentials of every key in `keytab` (any `libvirt/HOST` principal it
    /// holds), with the replay cache `rcache` (a `type:residual` name) if given.
    fn acceptor(keytab: &Path, rcache: Option<&str>) -> Result<Cred, GssError> {
        let lib = lib()?;
        let bad = |_| GssError::Protocol("a keytab path with a NUL byte");
        let kt = CString::new(format!("FILE:{}", keytab.display())).map_err(bad)?;
        let key_kt = c"keytab";
        let key_rc = c"rcache";
        let rc = rcache.map(CString::new).transpose().map_err(bad)?;
        let mut elems = vec![gss_key_value_element_desc {
            key: key_kt.as_ptr(),
            value: kt.as_ptr(),
        }];
        if let Some(rc) = &rc {
            elems.push(gss_key_value_element_desc {
                key: key_rc.as_ptr(),
                value: rc.as_ptr(),
            });
        }
        let store = gss_key_value_set_desc {
            count: elems.len() as u32,
            elements: elems.as_ptr(),
        };
        let mut minor = 0;
        let mut raw: gss_cred_id_t = std::ptr::null_mut();
        // SAFETY: `store` and the strings it points to outlive the call, which only reads
        // them; `raw` receives credentials released in Drop; the optional outputs are NULL.
        let major = unsafe {
            (lib.acquire_cred_from)(
                &mut minor,
                std::ptr::null_mut(),
                GSS_C_INDEFINITE,
                std::ptr::null_mut(),
                GSS_C_ACCEPT,
                &store,
                &mut raw,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        check(lib, "cannot use the keytab", major, minor)?;
        Ok(Cred { lib, raw })
    }
}

// SAFETY: as for `Name`: used by its one owner at a time; MIT's credentials carry their
// own lock.
unsafe impl Send for Cred {}

impl Drop for Cred {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            let mut minor = 0;
            // SAFETY: the credentials are ours and released once.
            unsafe { (self.lib.release_cred)(&mut minor, &mut self.raw) };
        }
    }
}

/// A security context.
struct Ctx {
    lib: &'static Lib,
    raw: gss_ctx_id_t,
}

// SAFETY: a context is used by one thread at a time (the owner holds it by `&mut`, or the
// layer behind a Mutex); MIT's library lets a context move between threads.
unsafe impl Send for Ctx {}

impl Ctx {
    fn new(lib: &'static Lib) -> Ctx {
        Ctx {
            lib,
            raw: std::ptr::null_mut(),
        }
    }

    fn wrap(&mut self, conf: bool, data: &[u8]) -> Result<Vec<u8>, GssError> {
        let mut minor = 0;
        let mut inp = input(data);
        let mut out = empty_buffer();
        let mut conf_state: c_int = 0;
        // SAFETY: the context is established; `inp` is only read; the library fills `out`.
        let major = unsafe {
            (self.lib.wrap)(
                &mut minor,
                self.raw,
                c_int::from(conf),
                0,
                &mut inp,
                &mut conf_state,
                &mut out,
            )
        };
        let token = take(self.lib, &mut out);
        check(self.lib, "gss_wrap", major, minor)?;
        if conf && conf_state == 0 {
            return Err(GssError::Protocol("no confidentiality from gss_wrap"));
        }
        Ok(token)
    }

    /// The token's contents and whether they were encrypted.
    fn unwrap(&mut self, token: &[u8]) -> Result<(Vec<u8>, bool), GssError> {
        let mut minor = 0;
        let mut inp = input(token);
        let mut out = empty_buffer();
        let mut conf_state: c_int = 0;
        let mut qop: OM_uint32 = 0;
        // SAFETY: as in wrap.
        let major = unsafe {
            (self.lib.unwrap)(
                &mut minor,
                self.raw,
                &mut inp,
                &mut out,
                &mut conf_state,
                &mut qop,
            )
        };
        let data = take(self.lib, &mut out);
        check(self.lib, "gss_unwrap", major, minor)?;
        Ok((data, conf_state != 0))
    }

    fn wrap_size_limit(&mut self, conf: bool, max_token: u32) -> Result<u32, GssError> {
        let mut minor = 0;
        let mut max_in: OM_uint32 = 0;
        // SAFETY: the context is established; `max_in` is a live local.
        let major = unsafe {
            (self.lib.wrap_size_limit)(
                &mut minor,
                self.raw,
                c_int::from(conf),
                0,
                max_token,
                &mut max_in,
            )
        };
        check(self.lib, "gss_wrap_size_limit", major, minor)?;
        Ok(max_in)
    }

    /// The context's strength in bits, as cyrus-sasl reports it.
    fn ssf(&mut self) -> u32 {
        let mut minor = 0;
        let mut set: *mut gss_buffer_set_desc = std::ptr::null_mut();
        let mut o = oid(OID_SASL_SSF);
        // SAFETY: the context is established; the library allocates `set`, released below.
        let major = unsafe {
            (self.lib.inquire_sec_context_by_oid)(&mut minor, self.raw, &mut o, &mut set)
        };
        if is_error(major) || set.is_null() {
            return FALLBACK_SSF;
        }
        // SAFETY: `set` points to the library's buffer set of `count` buffers.
        let v = unsafe {
            let s = &*set;
            if s.count == 1 && !s.elements.is_null() && (*s.elements).length == 4 {
                let b = std::slice::from_raw_parts((*s.elements).value as *const u8, 4);
                Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            } else {
                None
            }
        };
        // SAFETY: released once.
        unsafe { (self.lib.release_buffer_set)(&mut minor, &mut set) };
        v.unwrap_or(FALLBACK_SSF)
    }

    /// The principal the initiator asked a ticket for (ours).
    fn target(&mut self) -> Result<String, GssError> {
        let mut minor = 0;
        let mut targ: gss_name_t = std::ptr::null_mut();
        // SAFETY: the context is established; only the target name is asked for, and it
        // is released by the Name made of it.
        let major = unsafe {
            (self.lib.inquire_context)(
                &mut minor,
                self.raw,
                std::ptr::null_mut(),
                &mut targ,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let name = Name {
            lib: self.lib,
            raw: targ,
        };
        check(self.lib, "gss_inquire_context", major, minor)?;
        name.display()
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            let mut minor = 0;
            // SAFETY: the context is ours and deleted once; no output token is wanted.
            unsafe {
                (self.lib.delete_sec_context)(&mut minor, &mut self.raw, std::ptr::null_mut())
            };
        }
    }
}

/// The established context as a security layer.
pub struct GssLayer {
    ctx: Mutex<Ctx>,
    conf: bool,
    max_plain: usize,
    max_token: usize,
    pub ssf: u32,
}

impl SecurityLayer for GssLayer {
    fn wrap(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut c = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        c.wrap(self.conf, plain).map_err(io::Error::other)
    }

    fn unwrap(&self, token: &[u8]) -> io::Result<Vec<u8>> {
        let mut c = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let (data, conf) = c.unwrap(token).map_err(io::Error::other)?;
        if self.conf && !conf {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an unencrypted packet under a confidentiality layer",
            ));
        }
        Ok(data)
    }

    fn max_plain(&self) -> usize {
        self.max_plain
    }

    fn max_token(&self) -> usize {
        self.max_token
    }
}

/// Builds the layer once both sides agreed: `peer_max` is the largest token the peer takes.
fn make_layer(mut ctx: Ctx, peer_max: u32) -> Result<GssLayer, GssError> {
    if peer_max == 0 {
        return Err(GssError::Protocol(
            "the peer takes no security layer packets",
        ));
    }
    let max_plain = ctx.wrap_size_limit(true, peer_max)?;
    if max_plain == 0 || max_plain >= peer_max {
        return Err(GssError::Protocol("no room for data in the peer's buffer"));
    }
    let ssf = ctx.ssf();
    Ok(GssLayer {
        ctx: Mutex::new(ctx),
        conf: true,
        max_plain: max_plain as usize,
        max_token: MAX_BUFFER as usize,
        ssf,
    })
}

fn max_of(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[1], b[2], b[3]])
}

/// How an exchange went on.
pub enum Step {
    /// Send this to the peer and wait for its answer.
    Continue(Vec<u8>),
    /// Authenticated.
    Done(Outcome),
    /// (Client side) send this last message; once the server says it is complete, the
    /// outcome holds.
    Finish(Vec<u8>, Outcome),
}

/// What a finished exchange established.
pub struct Outcome {
    /// Server side: the client's identity, as cyrus-sasl names it (the principal without
    /// its realm when that is the server's default realm, else the whole principal).
    pub user: String,
    /// The security layer, if one was chosen.
    pub layer: Option<Arc<GssLayer>>,
    /// Its strength in bits (0 without a layer).
    pub ssf: u32,
}

enum ServerState {
    Accepting {
        cred: Cred,
        ctx: Ctx,
    },
    /// Sent the last context token; waiting for the client's empty answer.
    Established {
        ctx: Ctx,
        user: String,
        flags: u32,
    },
    /// Sent the offer of layers.
    Offered {
        ctx: Ctx,
        user: String,
        offered: u8,
    },
    Done,
}

/// One authentication, server side.
pub struct GssServer {
    state: ServerState,
    /// A security layer is required (plain TCP): confidentiality is the only offer.
    need_layer: bool,
}

// SAFETY: every method that touches the library's objects takes `&mut self`; a shared
// reference gives access to nothing.
unsafe impl Sync for GssServer {}

impl GssServer {
    /// Starts an exchange accepting tickets for the `libvirt/…` principals of `keytab`.
    pub fn new(
        keytab: &Path,
        rcache: Option<&str>,
        need_layer: bool,
    ) -> Result<GssServer, GssError> {
        let lib = lib()?;
        let cred = Cred::acceptor(keytab, rcache)?;
        Ok(GssServer {
            state: ServerState::Accepting {
                cred,
                ctx: Ctx::new(lib),
            },
            need_layer,
        })
    }

    /// Takes the client's next message (AUTH_SASL_START's data, then each STEP's).
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, GssError> {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Accepting { cred, mut ctx } => {
                let lib = ctx.lib;
                let mut minor = 0;
                let mut inp = input(msg);
                let mut out = empty_buffer();
                let mut src: gss_name_t = std::ptr::null_mut();
                let mut flags: OM_uint32 = 0;
                // SAFETY: the context pointer is ours (NULL at first, then the library's);
                // `inp` is only read; the library fills `src`, `out` and `flags`; no mech,
                // lifetime or delegated credentials are asked for.
                let major = unsafe {
                    (lib.accept_sec_context)(
                        &mut minor,
                        &mut ctx.raw,
                        cred.raw,
                        &mut inp,
                        std::ptr::null_mut(),
                        &mut src,
                        std::ptr::null_mut(),
                        &mut out,
                        &mut flags,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
                let token = take(lib, &mut out);
                let src = Name { lib, raw: src };
                check(lib, "gss_accept_sec_context", major, minor)?;
                if major & 0xffff == GSS_S_CONTINUE_NEEDED {
                    self.state = ServerState::Accepting { cred, ctx };
                    return Ok(Step::Continue(token));
                }
                drop(cred);
                // A ticket for another service of the keytab's is not for us.
                let target = ctx.target()?;
                if target.split('/').next() != Some(SERVICE) {
                    return Err(GssError::Refused(format!(
                        "a ticket for '{target}', not for a {SERVICE}/ principal"
                    )));
                }
                let user = identity(&src)?;
                if token.is_empty() {
                    return self.offer(ctx, user, flags);
                }
                self.state = ServerState::Established { ctx, user, flags };
                Ok(Step::Continue(token))
            }
            ServerState::Established { ctx, user, flags } => {
                if !msg.is_empty() {
                    return Err(GssError::Protocol("data where an empty answer was due"));
                }
                self.offer(ctx, user, flags)
            }
            ServerState::Offered {
                mut ctx,
                user,
                offered,
            } => {
                let (reply, _) = ctx.unwrap(msg)?;
                if reply.len() < 4 {
                    return Err(GssError::Protocol(
                        "the client's choice of layer is too short",
                    ));
                }
                let choice = reply[0];
                let authzid = std::str::from_utf8(&reply[4..]).map_err(|_| {
                    GssError::Protocol("an authorization identity that is not UTF-8")
                })?;
                // Acting for someone else is not supported; naming oneself is fine.
                if !authzid.is_empty()
                    && authzid != user
                    && authzid.split('@').next() != Some(&user)
                {
                    return Err(GssError::Refused(format!(
                        "'{user}' may not act as '{authzid}'"
                    )));
                }
                let layer = if choice & (LAYER_INTEGRITY | LAYER_CONFIDENTIALITY) == 0
                    && offered & LAYER_NONE != 0
                {
                    None
                } else if choice & (LAYER_INTEGRITY | LAYER_CONFIDENTIALITY) != 0
                    && offered & LAYER_CONFIDENTIALITY != 0
                {
                    Some(Arc::new(make_layer(ctx, max_of(&reply))?))
                } else {
                    return Err(GssError::Protocol("the client chose a layer not offered"));
                };
                Ok(Step::Done(Outcome {
                    user,
                    ssf: layer.as_ref().map_or(0, |l| l.ssf),
                    layer,
                }))
            }
            ServerState::Done => Err(GssError::Protocol("the exchange is over")),
        }
    }

    fn offer(&mut self, mut ctx: Ctx, user: String, flags: u32) -> Result<Step, GssError> {
        let offer = if self.need_layer {
            if flags & GSS_C_CONF_FLAG == 0 || flags & GSS_C_INTEG_FLAG == 0 {
                return Err(GssError::Refused(
                    "the context has no confidentiality, which plain TCP needs".into(),
                ));
            }
            let m = MAX_BUFFER.to_be_bytes();
            [LAYER_CONFIDENTIALITY, m[1], m[2], m[3]]
        } else {
            // No layer, so no buffer (RFC 4752).
            [LAYER_NONE, 0, 0, 0]
        };
        let token = ctx.wrap(false, &offer)?;
        self.state = ServerState::Offered {
            ctx,
            user,
            offered: offer[0],
        };
        Ok(Step::Continue(token))
    }
}

/// The client's identity as cyrus-sasl's GSSAPI plugin gives it: the principal without its
/// realm when that names the same principal (the realm is the default one), else whole.
fn identity(src: &Name) -> Result<String, GssError> {
    let canonical = src.canonical()?;
    let full = canonical.display()?;
    if let Some((short, _realm)) = full.rsplit_once('@') {
        if !short.is_empty() {
            let without = Name::import(short, OID_NT_USER)?;
            if canonical.same_as(&without)? {
                return Ok(short.to_string());
            }
        }
    }
    Ok(full)
}

enum ClientState {
    Initiating {
        target: Name,
        ctx: Ctx,
    },
    /// The context is established; waiting for the server's offer of layers.
    Established {
        ctx: Ctx,
    },
    Done,
}

/// One authentication, client side: the user's Kerberos credentials (their ccache) for
/// `libvirt/HOST`.
pub struct GssClient {
    state: ClientState,
    need_layer: bool,
}

// SAFETY: as for `GssServer`.
unsafe impl Sync for GssClient {}

impl GssClient {
    /// `host` is the server's name as the URI gives it; `need_layer` on plain TCP.
    pub fn new(host: &str, need_layer: bool) -> Result<GssClient, GssError> {
        let lib = lib()?;
        let target = Name::import(&format!("{SERVICE}@{host}"), OID_NT_HOSTBASED)?;
        Ok(GssClient {
            state: ClientState::Initiating {
                target,
                ctx: Ctx::new(lib),
            },
            need_layer,
        })
    }

    /// The first message (AUTH_SASL_START's data).
    pub fn first(&mut self) -> Result<Vec<u8>, GssError> {
        match self.step(&[])? {
            Step::Continue(t) => Ok(t),
            _ => Err(GssError::Protocol("done before starting")),
        }
    }

    /// Takes the server's next message; gives the answer to send, the last of which comes
    /// with the outcome ([`Step::Finish`]).
    pub fn step(&mut self, msg: &[u8]) -> Result<Step, GssError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Initiating { target, mut ctx } => {
                let lib = ctx.lib;
                let mut minor = 0;
                let mut inp = input(msg);
                let mut out = empty_buffer();
                let mut mech = oid(OID_KRB5);
                let mut flags: OM_uint32 = 0;
                let want =
                    GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
                let first = ctx.raw.is_null();
                // SAFETY: the context pointer is ours (NULL at first); the target name and
                // OID are live; the input is only read (none on the first call); the
                // library fills `out` and `flags`; default credentials (the ccache).
                let major = unsafe {
                    (lib.init_sec_context)(
                        &mut minor,
                        std::ptr::null_mut(),
                        &mut ctx.raw,
                        target.raw,
                        &mut mech,
                        want,
                        0,
                        std::ptr::null_mut(),
                        if first {
                            std::ptr::null_mut()
                        } else {
                            &mut inp
                        },
                        std::ptr::null_mut(),
                        &mut out,
                        &mut flags,
                        std::ptr::null_mut(),
                    )
                };
                let token = take(lib, &mut out);
                check(lib, "gss_init_sec_context", major, minor)?;
                if major & 0xffff == GSS_S_CONTINUE_NEEDED {
                    self.state = ClientState::Initiating { target, ctx };
                } else {
                    self.state = ClientState::Established { ctx };
                }
                Ok(Step::Continue(token))
            }
            ClientState::Established { mut ctx } => {
                let (offer, _) = ctx.unwrap(msg)?;
                if offer.len() != 4 {
                    return Err(GssError::Protocol(
                        "the server's offer of layers is not 4 bytes",
                    ));
                }
                let (answer, layer) = if offer[0] & LAYER_CONFIDENTIALITY != 0 && self.need_layer {
                    let server_max = max_of(&offer);
                    let m = MAX_BUFFER.to_be_bytes();
                    let answer = ctx.wrap(false, &[LAYER_CONFIDENTIALITY, m[1], m[2], m[3]])?;
                    (answer, Some(Arc::new(make_layer(ctx, server_max)?)))
                } else if offer[0] & LAYER_NONE != 0 && !self.need_layer {
                    (ctx.wrap(false, &[LAYER_NONE, 0, 0, 0])?, None)
                } else {
                    return Err(GssError::Refused(
                        "the server offers no security layer strong enough".into(),
                    ));
                };
                Ok(Step::Finish(
                    answer,
                    Outcome {
                        user: String::new(),
                        ssf: layer.as_ref().map_or(0, |l| l.ssf),
                        layer,
                    },
                ))
            }
            ClientState::Done => Err(GssError::Protocol("the exchange is over")),
        }
    }
}
