//! REMOTE_PROGRAM: procedure numbers and the argument / return / event types of the calls
//! Vireo serves. Numbers and field orders are libvirt's (they are the wire contract); the
//! Rust spelling is ours. `XxxArgs` is what a CALL carries, `XxxRet` what its REPLY carries;
//! a procedure with neither takes or returns nothing.

use vireo_xdr::{xdr_struct, Array, CharArray, FixedChars};

pub type Uuid = [u8; 16];

/// libvirt's list maxima.
pub const DOMAIN_LIST_MAX: usize = 16384;
pub const AUTH_TYPE_LIST_MAX: usize = 20;
pub const DOMAIN_MESSAGES_MAX: usize = 2048;
pub const SECURITY_LABEL_MAX: usize = 4097;
pub const SECURITY_MODEL_MAX: usize = 257;
pub const SECURITY_DOI_MAX: usize = 257;

xdr_struct! {
    /// A domain handle (`remote_nonnull_domain`). `id` is -1 when the domain is not running.
    pub struct Domain {
        pub name: String,
        pub uuid: Uuid,
        pub id: i32,
    }
}

xdr_struct! {
    /// A network handle (`remote_nonnull_network`).
    pub struct Network {
        pub name: String,
        pub uuid: Uuid,
    }
}

procedures! {
    CONNECT_OPEN = 1,
    CONNECT_CLOSE = 2,
    CONNECT_GET_TYPE = 3,
    CONNECT_GET_VERSION = 4,
    CONNECT_GET_MAX_VCPUS = 5,
    NODE_GET_INFO = 6,
    CONNECT_GET_CAPABILITIES = 7,
    CONNECT_GET_CPU_MODEL_NAMES = 312,
    CONNECT_COMPARE_CPU = 158,
    CONNECT_BASELINE_CPU = 162,
    CONNECT_COMPARE_HYPERVISOR_CPU = 393,
    CONNECT_BASELINE_HYPERVISOR_CPU = 394,
    NODE_GET_CPU_MAP = 293,
    CONNECT_GET_DOMAIN_CAPABILITIES = 342,
    DOMAIN_ATTACH_DEVICE = 8,
    DOMAIN_CREATE = 9,
    DOMAIN_CREATE_XML = 10,
    DOMAIN_DEFINE_XML = 11,
    DOMAIN_DESTROY = 12,
    DOMAIN_DETACH_DEVICE = 13,
    DOMAIN_GET_XML_DESC = 14,
    DOMAIN_GET_AUTOSTART = 15,
    DOMAIN_GET_INFO = 16,
    DOMAIN_GET_MAX_MEMORY = 17,
    DOMAIN_GET_MAX_VCPUS = 18,
    DOMAIN_GET_OS_TYPE = 19,
    CONNECT_LIST_DEFINED_DOMAINS = 21,
    DOMAIN_LOOKUP_BY_ID = 22,
    DOMAIN_LOOKUP_BY_NAME = 23,
    DOMAIN_LOOKUP_BY_UUID = 24,
    CONNECT_NUM_OF_DEFINED_DOMAINS = 25,
    DOMAIN_REBOOT = 27,
    DOMAIN_RESUME = 28,
    DOMAIN_SET_AUTOSTART = 29,
    DOMAIN_SHUTDOWN = 33,
    DOMAIN_SUSPEND = 34,
    DOMAIN_UNDEFINE = 35,
    CONNECT_LIST_DOMAINS = 37,
    CONNECT_NUM_OF_DOMAINS = 51,
    CONNECT_GET_HOSTNAME = 59,
    CONNECT_SUPPORTS_FEATURE = 60,
    AUTH_LIST = 66,
    CONNECT_DOMAIN_EVENT_REGISTER = 105,
    CONNECT_DOMAIN_EVENT_DEREGISTER = 106,
    DOMAIN_EVENT_LIFECYCLE = 107,
    CONNECT_GET_URI = 110,
    CONNECT_NUM_OF_STORAGE_POOLS = 71,
    CONNECT_LIST_STORAGE_POOLS = 72,
    CONNECT_NUM_OF_DEFINED_STORAGE_POOLS = 73,
    CONNECT_LIST_DEFINED_STORAGE_POOLS = 74,
    CONNECT_FIND_STORAGE_POOL_SOURCES = 75,
    STORAGE_POOL_CREATE_XML = 76,
    STORAGE_POOL_DEFINE_XML = 77,
    STORAGE_POOL_CREATE = 78,
    STORAGE_POOL_BUILD = 79,
    STORAGE_POOL_DESTROY = 80,
    STORAGE_POOL_DELETE = 81,
    STORAGE_POOL_UNDEFINE = 82,
    STORAGE_POOL_REFRESH = 83,
    STORAGE_POOL_LOOKUP_BY_NAME = 84,
    STORAGE_POOL_LOOKUP_BY_UUID = 85,
    STORAGE_POOL_LOOKUP_BY_VOLUME = 86,
    STORAGE_POOL_GET_INFO = 87,
    STORAGE_POOL_GET_XML_DESC = 88,
    STORAGE_POOL_GET_AUTOSTART = 89,
    STORAGE_POOL_SET_AUTOSTART = 90,
    STORAGE_POOL_NUM_OF_VOLUMES = 91,
    STORAGE_POOL_LIST_VOLUMES = 92,
    STORAGE_VOL_CREATE_XML = 93,
    STORAGE_VOL_DELETE = 94,
    STORAGE_VOL_LOOKUP_BY_NAME = 95,
    STORAGE_VOL_LOOKUP_BY_KEY = 96,
    STORAGE_VOL_LOOKUP_BY_PATH = 97,
    STORAGE_VOL_GET_INFO = 98,
    STORAGE_VOL_GET_XML_DESC = 99,
    STORAGE_VOL_GET_PATH = 100,
    STORAGE_VOL_CREATE_XML_FROM = 125,
    CONNECT_NUM_OF_SECRETS = 139,
    CONNECT_LIST_SECRETS = 140,
    SECRET_LOOKUP_BY_UUID = 141,
    NODE_NUM_OF_DEVICES = 111,
    NODE_LIST_DEVICES = 112,
    NODE_DEVICE_LOOKUP_BY_NAME = 113,
    NODE_DEVICE_GET_XML_DESC = 114,
    NODE_DEVICE_GET_PARENT = 115,
    NODE_DEVICE_NUM_OF_CAPS = 116,
    NODE_DEVICE_LIST_CAPS = 117,
    CONNECT_LIST_ALL_NODE_DEVICES = 285,
    NODE_DEVICE_DETTACH = 118,
    NODE_DEVICE_RE_ATTACH = 119,
    NODE_DEVICE_RESET = 120,
    NODE_DEVICE_DETACH_FLAGS = 301,
    NODE_DEVICE_CREATE_XML = 123,
    NODE_DEVICE_DESTROY = 124,
    NODE_DEVICE_DEFINE_XML = 428,
    NODE_DEVICE_UNDEFINE = 429,
    NODE_DEVICE_CREATE = 430,
    NODE_DEVICE_GET_AUTOSTART = 433,
    NODE_DEVICE_SET_AUTOSTART = 434,
    NODE_DEVICE_IS_PERSISTENT = 435,
    NODE_DEVICE_IS_ACTIVE = 436,
    SECRET_DEFINE_XML = 142,
    SECRET_GET_XML_DESC = 143,
    SECRET_SET_VALUE = 144,
    SECRET_GET_VALUE = 145,
    SECRET_UNDEFINE = 146,
    SECRET_LOOKUP_BY_USAGE = 147,
    CONNECT_NUM_OF_INTERFACES = 126,
    CONNECT_LIST_INTERFACES = 127,
    INTERFACE_LOOKUP_BY_NAME = 128,
    INTERFACE_LOOKUP_BY_MAC_STRING = 129,
    INTERFACE_GET_XML_DESC = 130,
    INTERFACE_DEFINE_XML = 131,
    INTERFACE_UNDEFINE = 132,
    INTERFACE_CREATE = 133,
    INTERFACE_DESTROY = 134,
    CONNECT_NUM_OF_DEFINED_INTERFACES = 137,
    CONNECT_LIST_DEFINED_INTERFACES = 138,
    INTERFACE_IS_ACTIVE = 156,
    INTERFACE_CHANGE_BEGIN = 220,
    INTERFACE_CHANGE_COMMIT = 221,
    INTERFACE_CHANGE_ROLLBACK = 222,
    CONNECT_LIST_ALL_INTERFACES = 284,
    DOMAIN_GET_SECURITY_LABEL = 121,
    NODE_GET_SECURITY_MODEL = 122,
    CONNECT_IS_SECURE = 149,
    STORAGE_POOL_IS_ACTIVE = 154,
    STORAGE_POOL_IS_PERSISTENT = 155,
    STORAGE_VOL_WIPE = 165,
    DOMAIN_IS_ACTIVE = 150,
    DOMAIN_IS_PERSISTENT = 151,
    CONNECT_GET_LIB_VERSION = 157,
    CONNECT_DOMAIN_EVENT_REGISTER_ANY = 167,
    CONNECT_DOMAIN_EVENT_DEREGISTER_ANY = 168,
    DOMAIN_ATTACH_DEVICE_FLAGS = 160,
    DOMAIN_DETACH_DEVICE_FLAGS = 161,
    DOMAIN_UPDATE_DEVICE_FLAGS = 174,
    DOMAIN_DETACH_DEVICE_ALIAS = 392,
    DOMAIN_EVENT_DEVICE_REMOVED = 311,
    DOMAIN_RESTORE = 54,
    DOMAIN_SAVE = 55,
    DOMAIN_MANAGED_SAVE = 182,
    DOMAIN_HAS_MANAGED_SAVE_IMAGE = 183,
    DOMAIN_MANAGED_SAVE_REMOVE = 184,
    DOMAIN_SAVE_FLAGS = 232,
    DOMAIN_RESTORE_FLAGS = 233,
    DOMAIN_SAVE_IMAGE_GET_XML_DESC = 235,
    DOMAIN_SAVE_IMAGE_DEFINE_XML = 236,
    DOMAIN_MANAGED_SAVE_GET_XML_DESC = 388,
    DOMAIN_MANAGED_SAVE_DEFINE_XML = 389,
    DOMAIN_SNAPSHOT_CREATE_XML = 185,
    DOMAIN_SNAPSHOT_GET_XML_DESC = 186,
    DOMAIN_SNAPSHOT_NUM = 187,
    DOMAIN_SNAPSHOT_LIST_NAMES = 188,
    DOMAIN_SNAPSHOT_LOOKUP_BY_NAME = 189,
    DOMAIN_HAS_CURRENT_SNAPSHOT = 190,
    DOMAIN_SNAPSHOT_CURRENT = 191,
    DOMAIN_REVERT_TO_SNAPSHOT = 192,
    DOMAIN_SNAPSHOT_DELETE = 193,
    DOMAIN_SNAPSHOT_GET_PARENT = 244,
    DOMAIN_SNAPSHOT_NUM_CHILDREN = 246,
    DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES = 247,
    DOMAIN_SNAPSHOT_IS_CURRENT = 271,
    DOMAIN_SNAPSHOT_HAS_METADATA = 272,
    DOMAIN_LIST_ALL_SNAPSHOTS = 274,
    DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN = 275,
    DOMAIN_CREATE_WITH_FLAGS = 196,
    DOMAIN_GET_VCPUS_FLAGS = 200,
    DOMAIN_OPEN_CONSOLE = 201,
    DOMAIN_SCREENSHOT = 211,
    DOMAIN_SEND_KEY = 226,
    DOMAIN_INTERFACE_ADDRESSES = 353,
    DOMAIN_IS_UPDATED = 202,
    STORAGE_VOL_UPLOAD = 208,
    STORAGE_VOL_DOWNLOAD = 209,
    DOMAIN_GET_STATE = 212,
    DOMAIN_UNDEFINE_FLAGS = 231,
    DOMAIN_DESTROY_FLAGS = 234,
    DOMAIN_RESET = 245,
    DOMAIN_SHUTDOWN_FLAGS = 258,
    STORAGE_VOL_WIPE_PATTERN = 259,
    STORAGE_VOL_RESIZE = 260,
    DOMAIN_SET_METADATA = 264,
    DOMAIN_GET_METADATA = 265,
    DOMAIN_EVENT_CALLBACK_METADATA_CHANGE = 379,
    DOMAIN_BLOCK_STATS = 64,
    DOMAIN_INTERFACE_STATS = 65,
    DOMAIN_MEMORY_STATS = 159,
    DOMAIN_GET_BLOCK_INFO = 194,
    DOMAIN_BLOCK_STATS_FLAGS = 243,
    DOMAIN_SET_MEMORY_STATS_PERIOD = 308,
    DOMAIN_GET_VCPUS = 20,
    DOMAIN_SET_MAX_MEMORY = 30,
    DOMAIN_SET_MEMORY = 31,
    DOMAIN_SET_VCPUS = 32,
    DOMAIN_SET_VCPUS_FLAGS = 199,
    DOMAIN_SET_MEMORY_FLAGS = 204,
    DOMAIN_GET_VCPU_PIN_INFO = 230,
    DOMAIN_PIN_VCPU_FLAGS = 225,
    DOMAIN_PIN_VCPU = 26,
    DOMAIN_PIN_EMULATOR = 279,
    DOMAIN_GET_EMULATOR_PIN_INFO = 280,
    DOMAIN_GET_IOTHREAD_INFO = 351,
    DOMAIN_PIN_IOTHREAD = 352,
    DOMAIN_ADD_IOTHREAD = 355,
    DOMAIN_DEL_IOTHREAD = 356,
    DOMAIN_SET_IOTHREAD_PARAMS = 402,
    DOMAIN_GET_SCHEDULER_TYPE = 56,
    DOMAIN_GET_SCHEDULER_PARAMETERS = 57,
    DOMAIN_SET_SCHEDULER_PARAMETERS = 58,
    DOMAIN_SET_MEMORY_PARAMETERS = 197,
    DOMAIN_GET_MEMORY_PARAMETERS = 198,
    DOMAIN_SET_BLKIO_PARAMETERS = 205,
    DOMAIN_GET_BLKIO_PARAMETERS = 206,
    DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS = 219,
    DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS = 223,
    DOMAIN_GET_JOB_INFO = 163,
    DOMAIN_ABORT_JOB = 164,
    DOMAIN_GET_JOB_STATS = 298,
    CONNECT_GET_ALL_DOMAIN_STATS = 344,
    CONNECT_LIST_ALL_DOMAINS = 273,
    CONNECT_LIST_ALL_STORAGE_POOLS = 281,
    STORAGE_POOL_LIST_ALL_VOLUMES = 282,
    CONNECT_LIST_ALL_SECRETS = 287,
    CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY = 316,
    CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY = 317,
    DOMAIN_EVENT_CALLBACK_LIFECYCLE = 318,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED = 333,
    DOMAIN_EVENT_CALLBACK_DEVICE_ADDED = 354,
    DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED = 367,
    DOMAIN_BLOCK_JOB_ABORT = 237,
    DOMAIN_GET_HOSTNAME = 277,
    DOMAIN_FSFREEZE = 335,
    DOMAIN_FSTHAW = 336,
    DOMAIN_GET_TIME = 337,
    DOMAIN_SET_TIME = 338,
    DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE = 348,
    DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE = 438,
    DOMAIN_GET_FSINFO = 349,
    DOMAIN_SET_USER_PASSWORD = 357,
    DOMAIN_GET_GUEST_INFO = 418,
    DOMAIN_GET_GUEST_VCPUS = 371,
    DOMAIN_SET_GUEST_VCPUS = 372,
    DOMAIN_GET_BLOCK_JOB_INFO = 238,
    DOMAIN_BLOCK_JOB_SET_SPEED = 239,
    DOMAIN_BLOCK_PULL = 240,
    DOMAIN_EVENT_BLOCK_JOB = 241,
    DOMAIN_BLOCK_REBASE = 266,
    DOMAIN_BLOCK_COMMIT = 290,
    DOMAIN_EVENT_CALLBACK_BLOCK_JOB = 326,
    DOMAIN_EVENT_BLOCK_JOB_2 = 339,
    DOMAIN_BLOCK_COPY = 345,
    DOMAIN_DEFINE_XML_FLAGS = 350,
    CONNECT_REGISTER_CLOSE_CALLBACK = 360,
    CONNECT_UNREGISTER_CLOSE_CALLBACK = 361,
    CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY = 368,
    CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY = 369,
    STORAGE_POOL_EVENT_LIFECYCLE = 370,
    STORAGE_POOL_EVENT_REFRESH = 373,
    STORAGE_VOL_GET_INFO_FLAGS = 378,
    CONNECT_SECRET_EVENT_REGISTER_ANY = 380,
    CONNECT_SECRET_EVENT_DEREGISTER_ANY = 381,
    SECRET_EVENT_LIFECYCLE = 382,
    SECRET_EVENT_VALUE_CHANGED = 383,
    STORAGE_POOL_LOOKUP_BY_TARGET_PATH = 391,
    CONNECT_GET_STORAGE_POOL_CAPABILITIES = 403,
    CONNECT_SET_IDENTITY = 419,
    DOMAIN_GET_MESSAGES = 426,
    CONNECT_LIST_DEFINED_NETWORKS = 36,
    CONNECT_LIST_NETWORKS = 38,
    NETWORK_CREATE = 39,
    NETWORK_CREATE_XML = 40,
    NETWORK_DEFINE_XML = 41,
    NETWORK_DESTROY = 42,
    NETWORK_GET_XML_DESC = 43,
    NETWORK_GET_AUTOSTART = 44,
    NETWORK_GET_BRIDGE_NAME = 45,
    NETWORK_LOOKUP_BY_NAME = 46,
    NETWORK_LOOKUP_BY_UUID = 47,
    NETWORK_SET_AUTOSTART = 48,
    NETWORK_UNDEFINE = 49,
    CONNECT_NUM_OF_DEFINED_NETWORKS = 50,
    CONNECT_NUM_OF_NETWORKS = 52,
    NETWORK_IS_ACTIVE = 152,
    NETWORK_IS_PERSISTENT = 153,
    NWFILTER_LOOKUP_BY_NAME = 175,
    NWFILTER_LOOKUP_BY_UUID = 176,
    NWFILTER_GET_XML_DESC = 177,
    CONNECT_NUM_OF_NWFILTERS = 178,
    CONNECT_LIST_NWFILTERS = 179,
    NWFILTER_DEFINE_XML = 180,
    NWFILTER_UNDEFINE = 181,
    CONNECT_LIST_ALL_NETWORKS = 283,
    CONNECT_LIST_ALL_NWFILTERS = 286,
    NETWORK_UPDATE = 291,
    CONNECT_NETWORK_EVENT_REGISTER_ANY = 313,
    CONNECT_NETWORK_EVENT_DEREGISTER_ANY = 314,
    NETWORK_EVENT_LIFECYCLE = 315,
    NETWORK_GET_DHCP_LEASES = 341,
    NWFILTER_BINDING_LOOKUP_BY_PORT_DEV = 397,
    NWFILTER_BINDING_GET_XML_DESC = 398,
    NWFILTER_BINDING_CREATE_XML = 399,
    NWFILTER_BINDING_DELETE = 400,
    CONNECT_LIST_ALL_NWFILTER_BINDINGS = 401,
    NETWORK_LIST_ALL_PORTS = 404,
    NETWORK_PORT_LOOKUP_BY_UUID = 405,
    NETWORK_PORT_CREATE_XML = 406,
    NETWORK_PORT_GET_PARAMETERS = 407,
    NETWORK_PORT_SET_PARAMETERS = 408,
    NETWORK_PORT_GET_XML_DESC = 409,
    NETWORK_PORT_DELETE = 410,
    NWFILTER_DEFINE_XML_FLAGS = 431,
    NETWORK_DEFINE_XML_FLAGS = 432,
    NETWORK_CREATE_XML_FLAGS = 437,
    NETWORK_SET_METADATA = 444,
    NETWORK_GET_METADATA = 445,
    NETWORK_EVENT_CALLBACK_METADATA_CHANGE = 446,
    NODE_DEVICE_LOOKUP_SCSI_HOST_BY_WWN = 297,
    CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY = 374,
    CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY = 375,
    NODE_DEVICE_EVENT_LIFECYCLE = 376,
    NODE_DEVICE_EVENT_UPDATE = 377,
    DOMAIN_MIGRATE_SET_MAX_DOWNTIME = 166,
    DOMAIN_MIGRATE_SET_MAX_SPEED = 207,
    DOMAIN_MIGRATE_GET_MAX_SPEED = 242,
    DOMAIN_MIGRATE_BEGIN3_PARAMS = 302,
    DOMAIN_MIGRATE_PREPARE3_PARAMS = 303,
    DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS = 304,
    DOMAIN_MIGRATE_PERFORM3_PARAMS = 305,
    DOMAIN_MIGRATE_FINISH3_PARAMS = 306,
    DOMAIN_MIGRATE_CONFIRM3_PARAMS = 307,
    DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION = 359,
    DOMAIN_EVENT_CALLBACK_JOB_COMPLETED = 363,
    DOMAIN_MIGRATE_START_POST_COPY = 364,
    DOMAIN_MIGRATE_GET_MAX_DOWNTIME = 387,
    DOMAIN_PM_SUSPEND_FOR_DURATION = 261,
    DOMAIN_PM_WAKEUP = 267,
    DOMAIN_EVENT_REBOOT = 169,
    DOMAIN_EVENT_RTC_CHANGE = 170,
    DOMAIN_EVENT_WATCHDOG = 171,
    DOMAIN_EVENT_IO_ERROR = 172,
    DOMAIN_EVENT_GRAPHICS = 173,
    DOMAIN_EVENT_IO_ERROR_REASON = 195,
    DOMAIN_EVENT_CONTROL_ERROR = 224,
    DOMAIN_EVENT_DISK_CHANGE = 248,
    DOMAIN_EVENT_TRAY_CHANGE = 268,
    DOMAIN_EVENT_PMWAKEUP = 269,
    DOMAIN_EVENT_PMSUSPEND = 270,
    DOMAIN_EVENT_BALLOON_CHANGE = 276,
    DOMAIN_EVENT_PMSUSPEND_DISK = 292,
    DOMAIN_EVENT_CALLBACK_REBOOT = 319,
    DOMAIN_EVENT_CALLBACK_RTC_CHANGE = 320,
    DOMAIN_EVENT_CALLBACK_WATCHDOG = 321,
    DOMAIN_EVENT_CALLBACK_IO_ERROR = 322,
    DOMAIN_EVENT_CALLBACK_GRAPHICS = 323,
    DOMAIN_EVENT_CALLBACK_IO_ERROR_REASON = 324,
    DOMAIN_EVENT_CALLBACK_CONTROL_ERROR = 325,
    DOMAIN_EVENT_CALLBACK_DISK_CHANGE = 327,
    DOMAIN_EVENT_CALLBACK_TRAY_CHANGE = 328,
    DOMAIN_EVENT_CALLBACK_PMWAKEUP = 329,
    DOMAIN_EVENT_CALLBACK_PMSUSPEND = 330,
    DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE = 331,
    DOMAIN_EVENT_CALLBACK_PMSUSPEND_DISK = 332,
    DOMAIN_EVENT_CALLBACK_TUNABLE = 346,
    DOMAIN_EVENT_BLOCK_THRESHOLD = 385,
    DOMAIN_SET_BLOCK_THRESHOLD = 386,
}

/// Procedures a read-only connection may call. Everything else needs a read-write socket
/// (libvirt checks this in its public API entry points; we check it once, before dispatch).
pub fn allowed_read_only(p: i32) -> bool {
    use procs::*;
    !matches!(
        p,
        DOMAIN_CREATE
            | DOMAIN_CREATE_WITH_FLAGS
            | DOMAIN_CREATE_XML
            | DOMAIN_SHUTDOWN
            | DOMAIN_SHUTDOWN_FLAGS
            | DOMAIN_DESTROY_FLAGS
            | DOMAIN_REBOOT
            | DOMAIN_RESET
            | DOMAIN_PM_SUSPEND_FOR_DURATION
            | DOMAIN_PM_WAKEUP
            | DOMAIN_SET_BLOCK_THRESHOLD
            | DOMAIN_SUSPEND
            | DOMAIN_RESUME
            | DOMAIN_OPEN_CONSOLE
            | DOMAIN_SCREENSHOT
            | DOMAIN_SEND_KEY
            | DOMAIN_SET_MAX_MEMORY
            | DOMAIN_SET_MEMORY
            | DOMAIN_SET_MEMORY_FLAGS
            | DOMAIN_SET_VCPUS
            | DOMAIN_SET_VCPUS_FLAGS
            | DOMAIN_DEFINE_XML
            | DOMAIN_DEFINE_XML_FLAGS
            | DOMAIN_DESTROY
            | DOMAIN_SET_AUTOSTART
            | DOMAIN_UNDEFINE
            | DOMAIN_UNDEFINE_FLAGS
            | DOMAIN_SET_MEMORY_STATS_PERIOD
            | DOMAIN_SET_METADATA
            | NODE_DEVICE_DETTACH
            | NODE_DEVICE_RE_ATTACH
            | NODE_DEVICE_RESET
            | NODE_DEVICE_DETACH_FLAGS
            | NODE_DEVICE_CREATE_XML
            | NODE_DEVICE_DESTROY
            | NODE_DEVICE_DEFINE_XML
            | NODE_DEVICE_UNDEFINE
            | NODE_DEVICE_CREATE
            | NODE_DEVICE_SET_AUTOSTART
            | DOMAIN_ABORT_JOB
            | DOMAIN_SAVE
            | DOMAIN_SAVE_FLAGS
            | DOMAIN_RESTORE
            | DOMAIN_RESTORE_FLAGS
            | DOMAIN_MANAGED_SAVE
            | DOMAIN_MANAGED_SAVE_REMOVE
            | DOMAIN_MANAGED_SAVE_DEFINE_XML
            | DOMAIN_SNAPSHOT_CREATE_XML
            | DOMAIN_PIN_VCPU_FLAGS
            | DOMAIN_PIN_VCPU
            | DOMAIN_PIN_EMULATOR
            | DOMAIN_PIN_IOTHREAD
            | DOMAIN_DETACH_DEVICE_ALIAS
            | DOMAIN_ADD_IOTHREAD
            | DOMAIN_DEL_IOTHREAD
            | DOMAIN_SET_IOTHREAD_PARAMS
            | DOMAIN_SET_SCHEDULER_PARAMETERS
            | DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS
            | DOMAIN_SET_MEMORY_PARAMETERS
            | DOMAIN_SET_BLKIO_PARAMETERS
            | DOMAIN_FSFREEZE
            | DOMAIN_FSTHAW
            | DOMAIN_GET_TIME
            | DOMAIN_SET_TIME
            | DOMAIN_SET_USER_PASSWORD
            | DOMAIN_GET_FSINFO
            | DOMAIN_GET_GUEST_INFO
            | DOMAIN_GET_GUEST_VCPUS
            | DOMAIN_SET_GUEST_VCPUS
            | DOMAIN_BLOCK_JOB_ABORT
            | DOMAIN_BLOCK_JOB_SET_SPEED
            | DOMAIN_BLOCK_PULL
            | DOMAIN_BLOCK_REBASE
            | DOMAIN_BLOCK_COMMIT
            | DOMAIN_BLOCK_COPY
            | DOMAIN_REVERT_TO_SNAPSHOT
            | DOMAIN_SNAPSHOT_DELETE
            // It reads a file the client names.
            | DOMAIN_SAVE_IMAGE_GET_XML_DESC
            | DOMAIN_SAVE_IMAGE_DEFINE_XML
            | SECRET_DEFINE_XML
            | SECRET_SET_VALUE
            | SECRET_GET_VALUE
            | SECRET_UNDEFINE
            | CONNECT_FIND_STORAGE_POOL_SOURCES
            | STORAGE_POOL_CREATE_XML
            | STORAGE_POOL_DEFINE_XML
            | STORAGE_POOL_CREATE
            | STORAGE_POOL_BUILD
            | STORAGE_POOL_DESTROY
            | STORAGE_POOL_DELETE
            | STORAGE_POOL_UNDEFINE
            | STORAGE_POOL_REFRESH
            | STORAGE_POOL_SET_AUTOSTART
            | STORAGE_VOL_CREATE_XML
            | STORAGE_VOL_CREATE_XML_FROM
            | STORAGE_VOL_DELETE
            | STORAGE_VOL_WIPE
            | STORAGE_VOL_WIPE_PATTERN
            | STORAGE_VOL_RESIZE
            | STORAGE_VOL_UPLOAD
            | STORAGE_VOL_DOWNLOAD
            | NETWORK_CREATE
            | NETWORK_CREATE_XML
            | NETWORK_CREATE_XML_FLAGS
            | NETWORK_DEFINE_XML
            | NETWORK_DEFINE_XML_FLAGS
            | NETWORK_UNDEFINE
            | NETWORK_DESTROY
            | NETWORK_SET_AUTOSTART
            | NETWORK_UPDATE
            | NETWORK_SET_METADATA
            | NETWORK_PORT_CREATE_XML
            | NETWORK_PORT_SET_PARAMETERS
            | NETWORK_PORT_DELETE
            | NWFILTER_DEFINE_XML
            | NWFILTER_DEFINE_XML_FLAGS
            | NWFILTER_UNDEFINE
            | NWFILTER_BINDING_CREATE_XML
            | NWFILTER_BINDING_DELETE
            | INTERFACE_DEFINE_XML
            | INTERFACE_UNDEFINE
            | INTERFACE_CREATE
            | INTERFACE_DESTROY
            | INTERFACE_CHANGE_BEGIN
            | INTERFACE_CHANGE_COMMIT
            | INTERFACE_CHANGE_ROLLBACK
            | DOMAIN_MIGRATE_SET_MAX_DOWNTIME
            | DOMAIN_MIGRATE_GET_MAX_DOWNTIME
            | DOMAIN_MIGRATE_SET_MAX_SPEED
            | DOMAIN_MIGRATE_GET_MAX_SPEED
            | DOMAIN_MIGRATE_START_POST_COPY
            | DOMAIN_MIGRATE_BEGIN3_PARAMS
            | DOMAIN_MIGRATE_PREPARE3_PARAMS
            | DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS
            | DOMAIN_MIGRATE_PERFORM3_PARAMS
            | DOMAIN_MIGRATE_FINISH3_PARAMS
            | DOMAIN_MIGRATE_CONFIRM3_PARAMS
    )
}

/// Whether procedure `p` opens a stream (libvirt's `@readstream`/`@writestream`): its
/// packets follow the reply, with the call's serial. Migration tunnels (148, 215, 304),
/// console (201), volume upload and download (208, 209), screenshot (211), channel (296).
pub fn opens_stream(p: i32) -> bool {
    matches!(p, 148 | 201 | 208 | 209 | 211 | 215 | 296 | 304)
}

/// `CONNECT_OPEN` flag: read-only connection.
pub const CONNECT_RO: u32 = 1;

/// `CONNECT_LIST_ALL_DOMAINS` filter flags.
pub mod list_flags {
    pub const ACTIVE: u32 = 1;
    pub const INACTIVE: u32 = 2;
    pub const PERSISTENT: u32 = 4;
    pub const TRANSIENT: u32 = 8;
    pub const RUNNING: u32 = 16;
    pub const PAUSED: u32 = 32;
    pub const SHUTOFF: u32 = 64;
    pub const OTHER: u32 = 128;
    pub const MANAGEDSAVE: u32 = 256;
    pub const NO_MANAGEDSAVE: u32 = 512;
    pub const AUTOSTART: u32 = 1024;
    pub const NO_AUTOSTART: u32 = 2048;
    pub const HAS_SNAPSHOT: u32 = 4096;
    pub const NO_SNAPSHOT: u32 = 8192;
    pub const HAS_CHECKPOINT: u32 = 16384;
    pub const NO_CHECKPOINT: u32 = 32768;
}

/// Domain lifecycle event numbers (`virDomainEventType`).
/// `virDomainModificationImpact` and `VIR_DOMAIN_DEVICE_MODIFY_FORCE`.
pub mod affect {
    pub const CURRENT: u32 = 0;
    pub const LIVE: u32 = 1;
    pub const CONFIG: u32 = 2;
    pub const FORCE: u32 = 4;
}

/// The libvirt API level Vireo answers for `getLibVersion` (libvirt 9.0.0's encoding), on
/// every program and at every endpoint (daemons, admin, a VM's own).
pub const LIB_VERSION: u64 = 9_000_000;

pub mod event {
    /// The highest domain event id libvirt 9.0 defines (`VIR_DOMAIN_EVENT_ID_LAST - 1`):
    /// registrations for a higher one are refused.
    pub const MAX_ID: i32 = 26;
    pub const ID_LIFECYCLE: i32 = 0;
    pub const ID_BLOCK_JOB: i32 = 8;
    pub const ID_DEVICE_REMOVED: i32 = 15;
    pub const ID_BLOCK_JOB_2: i32 = 16;
    pub const ID_AGENT_LIFECYCLE: i32 = 18;
    pub const ID_DEVICE_ADDED: i32 = 19;
    pub const ID_DEVICE_REMOVAL_FAILED: i32 = 22;
    pub const ID_METADATA_CHANGE: i32 = 23;
    pub const ID_MEMORY_DEVICE_SIZE_CHANGE: i32 = 26;
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const SUSPENDED: i32 = 3;
    pub const RESUMED: i32 = 4;
    pub const STOPPED: i32 = 5;
    pub const SHUTDOWN: i32 = 6;
    pub const CRASHED: i32 = 8;
    pub const DEFINED_ADDED: i32 = 0;
    pub const DEFINED_UPDATED: i32 = 1;
    pub const UNDEFINED_REMOVED: i32 = 0;
    pub const STARTED_BOOTED: i32 = 0;
    pub const STARTED_RESTORED: i32 = 2;
    pub const SUSPENDED_PAUSED: i32 = 0;
    pub const SUSPENDED_RESTORED: i32 = 4;
    pub const RESUMED_UNPAUSED: i32 = 0;
    pub const STOPPED_SHUTDOWN: i32 = 0;
    pub const STOPPED_DESTROYED: i32 = 1;
    pub const STOPPED_SAVED: i32 = 4;
    pub const STOPPED_FAILED: i32 = 5;
    pub const SHUTDOWN_FINISHED: i32 = 0;
    pub const SHUTDOWN_GUEST: i32 = 1;
    pub const SHUTDOWN_HOST: i32 = 2;
    pub const DEFINED_FROM_SNAPSHOT: i32 = 3;
    pub const STARTED_FROM_SNAPSHOT: i32 = 3;
    pub const SUSPENDED_FROM_SNAPSHOT: i32 = 5;
    pub const RESUMED_FROM_SNAPSHOT: i32 = 2;
    pub const STOPPED_FROM_SNAPSHOT: i32 = 6;
    pub const PMSUSPENDED: i32 = 7;
    pub const PMSUSPENDED_MEMORY: i32 = 0;
    pub const PMSUSPENDED_DISK: i32 = 1;
    pub const STARTED_WAKEUP: i32 = 4;
    pub const SUSPENDED_IOERROR: i32 = 2;
    pub const SUSPENDED_WATCHDOG: i32 = 3;
}

/// `virDomainSnapshot*Flags`.
pub mod snapshot_flags {
    pub const CREATE_REDEFINE: u32 = 1;
    pub const CREATE_CURRENT: u32 = 2;
    pub const CREATE_NO_METADATA: u32 = 4;
    pub const CREATE_HALT: u32 = 8;
    pub const CREATE_DISK_ONLY: u32 = 16;
    pub const CREATE_REUSE_EXT: u32 = 32;
    pub const CREATE_QUIESCE: u32 = 64;
    pub const CREATE_ATOMIC: u32 = 128;
    pub const CREATE_LIVE: u32 = 256;
    pub const CREATE_VALIDATE: u32 = 512;
    /// ROOTS for a domain's list, DESCENDANTS for a snapshot's children.
    pub const LIST_ROOTS: u32 = 1;
    pub const LIST_DESCENDANTS: u32 = 1;
    pub const LIST_METADATA: u32 = 2;
    pub const LIST_LEAVES: u32 = 4;
    pub const LIST_NO_LEAVES: u32 = 8;
    pub const LIST_NO_METADATA: u32 = 16;
    pub const LIST_INACTIVE: u32 = 32;
    pub const LIST_ACTIVE: u32 = 64;
    pub const LIST_DISK_ONLY: u32 = 128;
    pub const LIST_INTERNAL: u32 = 256;
    pub const LIST_EXTERNAL: u32 = 512;
    pub const LIST_TOPOLOGICAL: u32 = 1024;
    pub const REVERT_RUNNING: u32 = 1;
    pub const REVERT_PAUSED: u32 = 2;
    pub const REVERT_FORCE: u32 = 4;
    pub const REVERT_RESET_NVRAM: u32 = 8;
    pub const DELETE_CHILDREN: u32 = 1;
    pub const DELETE_METADATA_ONLY: u32 = 2;
    pub const DELETE_CHILDREN_ONLY: u32 = 4;
    pub const XML_SECURE: u32 = 1;
}

/// `virDomainState` and the reasons Vireo reports with it.
pub mod state {
    pub const NOSTATE: i32 = 0;
    pub const RUNNING: i32 = 1;
    pub const PAUSED: i32 = 3;
    pub const SHUTDOWN: i32 = 4;
    pub const SHUTOFF: i32 = 5;
    pub const CRASHED: i32 = 6;
    pub const RUNNING_BOOTED: i32 = 1;
    pub const RUNNING_RESTORED: i32 = 3;
    pub const RUNNING_UNPAUSED: i32 = 5;
    pub const PAUSED_UNKNOWN: i32 = 0;
    pub const PAUSED_USER: i32 = 1;
    pub const PAUSED_SHUTTING_DOWN: i32 = 8;
    pub const SHUTDOWN_USER: i32 = 1;
    pub const SHUTOFF_UNKNOWN: i32 = 0;
    pub const SHUTOFF_SHUTDOWN: i32 = 1;
    pub const SHUTOFF_DESTROYED: i32 = 2;
    pub const SHUTOFF_CRASHED: i32 = 3;
    pub const SHUTOFF_SAVED: i32 = 5;
    pub const RUNNING_FROM_SNAPSHOT: i32 = 4;
    pub const PAUSED_FROM_SNAPSHOT: i32 = 7;
    pub const PAUSED_SNAPSHOT: i32 = 9;
    pub const SHUTOFF_FROM_SNAPSHOT: i32 = 7;
    pub const PMSUSPENDED: i32 = 7;
    pub const PMSUSPENDED_UNKNOWN: i32 = 0;
    pub const RUNNING_WAKEUP: i32 = 8;
    pub const PAUSED_IOERROR: i32 = 5;
    pub const PAUSED_WATCHDOG: i32 = 6;
}

xdr_struct! { pub struct ConnectOpenArgs { pub name: Option<String>, pub flags: u32 } }
xdr_struct! { pub struct ConnectGetTypeRet { pub type_: String } }
xdr_struct! { pub struct ConnectGetVersionRet { pub hv_ver: u64 } }
xdr_struct! { pub struct ConnectGetLibVersionRet { pub lib_ver: u64 } }
xdr_struct! { pub struct ConnectGetMaxVcpusArgs { pub type_: Option<String> } }
xdr_struct! { pub struct ConnectGetMaxVcpusRet { pub max_vcpus: i32 } }
xdr_struct! { pub struct ConnectGetHostnameRet { pub hostname: String } }
xdr_struct! { pub struct ConnectGetUriRet { pub uri: String } }
xdr_struct! { pub struct ConnectGetCapabilitiesRet { pub capabilities: String } }
xdr_struct! {
    pub struct ConnectGetDomainCapabilitiesArgs {
        pub emulatorbin: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct ConnectGetDomainCapabilitiesRet { pub capabilities: String } }
pub const CPUMAP_MAX: usize = 2048;
xdr_struct! {
    pub struct NodeGetCpuMapArgs {
        pub need_map: i32,
        pub need_online: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct NodeGetCpuMapRet {
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
        pub online: u32,
        pub ret: i32,
    }
}
pub const CONNECT_CPU_MODELS_MAX: usize = 8192;
xdr_struct! {
    pub struct ConnectGetCpuModelNamesArgs {
        pub arch: String,
        pub need_results: i32,
        pub flags: u32,
    }
}
pub const CPU_BASELINE_MAX: usize = 256;
xdr_struct! {
    pub struct ConnectCompareCpuArgs {
        pub xml: String,
        pub flags: u32,
    }
}
xdr_struct! {
    /// COMPARE_CPU and COMPARE_HYPERVISOR_CPU.
    pub struct ConnectCompareCpuRet {
        pub result: i32,
    }
}
xdr_struct! {
    pub struct ConnectBaselineCpuArgs {
        pub xml_cpus: Array<String, CPU_BASELINE_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    /// BASELINE_CPU and BASELINE_HYPERVISOR_CPU.
    pub struct ConnectBaselineCpuRet {
        pub cpu: String,
    }
}
xdr_struct! {
    pub struct ConnectCompareHypervisorCpuArgs {
        pub emulator: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub xml_cpu: String,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ConnectBaselineHypervisorCpuArgs {
        pub emulator: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub xml_cpus: Array<String, CPU_BASELINE_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ConnectGetCpuModelNamesRet {
        pub models: Array<String, CONNECT_CPU_MODELS_MAX>,
        pub ret: i32,
    }
}
xdr_struct! { pub struct ConnectSupportsFeatureArgs { pub feature: i32 } }
xdr_struct! { pub struct ConnectSupportsFeatureRet { pub supported: i32 } }
xdr_struct! { pub struct ConnectIsSecureRet { pub secure: i32 } }
xdr_struct! { pub struct AuthListRet { pub types: Array<i32, AUTH_TYPE_LIST_MAX> } }
xdr_struct! {
    pub struct NodeGetInfoRet {
        pub model: FixedChars<32>,
        pub memory: u64,
        pub cpus: i32,
        pub mhz: i32,
        pub nodes: i32,
        pub sockets: i32,
        pub cores: i32,
        pub threads: i32,
    }
}
xdr_struct! {
    pub struct NodeGetSecurityModelRet {
        pub model: CharArray<SECURITY_MODEL_MAX>,
        pub doi: CharArray<SECURITY_DOI_MAX>,
    }
}

xdr_struct! { pub struct ConnectNumOfDomainsRet { pub num: i32 } }
xdr_struct! { pub struct ConnectListDomainsArgs { pub maxids: i32 } }
xdr_struct! { pub struct ConnectListDomainsRet { pub ids: Array<i32, DOMAIN_LIST_MAX> } }
xdr_struct! { pub struct ConnectListDefinedDomainsArgs { pub maxnames: i32 } }
xdr_struct! { pub struct ConnectListDefinedDomainsRet { pub names: Array<String, DOMAIN_LIST_MAX> } }
xdr_struct! { pub struct ConnectListAllDomainsArgs { pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct ConnectListAllDomainsRet {
        pub domains: Array<Domain, DOMAIN_LIST_MAX>,
        pub ret: u32,
    }
}

xdr_struct! {
/// Arguments that are just a domain handle (`remote_domain_get_info_args` and its many twins).
pub struct DomainArgs { pub dom: Domain } }
xdr_struct! {
/// Arguments that are a domain handle and flags.
pub struct DomainFlagsArgs { pub dom: Domain, pub flags: u32 } }
xdr_struct! {
/// Returns that are just a domain handle.
pub struct DomainRet { pub dom: Domain } }

xdr_struct! { pub struct DomainDefineXmlArgs { pub xml: String } }
xdr_struct! { pub struct DomainDefineXmlFlagsArgs { pub xml: String, pub flags: u32 } }
/// libvirt's `REMOTE_CONNECT_IDENTITY_PARAMS_MAX`.
pub const IDENTITY_PARAMS_MAX: usize = 20;
xdr_struct! {
    pub struct ConnectSetIdentityArgs {
        pub params: Array<crate::typed::TypedParam, IDENTITY_PARAMS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainCreateXmlArgs { pub xml: String, pub flags: u32 } }
xdr_struct! {
    pub struct DomainOpenConsoleArgs {
        pub dom: Domain,
        pub dev_name: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainLookupByNameArgs { pub name: String } }
xdr_struct! { pub struct DomainLookupByUuidArgs { pub uuid: Uuid } }
xdr_struct! { pub struct DomainLookupByIdArgs { pub id: i32 } }
xdr_struct! { pub struct DomainGetXmlDescRet { pub xml: String } }
xdr_struct! {
    pub struct DomainGetInfoRet {
        pub state: u32,
        pub max_mem: u64,
        pub memory: u64,
        pub nr_virt_cpu: u32,
        pub cpu_time: u64,
    }
}
xdr_struct! { pub struct DomainGetStateRet { pub state: i32, pub reason: i32 } }
xdr_struct! { pub struct DomainGetAutostartRet { pub autostart: i32 } }
xdr_struct! { pub struct DomainSetAutostartArgs { pub dom: Domain, pub autostart: i32 } }
xdr_struct! { pub struct DomainIsActiveRet { pub active: i32 } }
xdr_struct! { pub struct DomainIsPersistentRet { pub persistent: i32 } }
xdr_struct! { pub struct DomainIsUpdatedRet { pub updated: i32 } }
xdr_struct! { pub struct DomainGetOsTypeRet { pub type_: String } }
xdr_struct! { pub struct DomainGetMaxMemoryRet { pub memory: u64 } }
xdr_struct! { pub struct DomainGetMaxVcpusRet { pub num: i32 } }
xdr_struct! { pub struct DomainGetVcpusFlagsRet { pub num: i32 } }
xdr_struct! { pub struct DomainHasManagedSaveImageRet { pub result: i32 } }
xdr_struct! { pub struct DomainSnapshotNumRet { pub num: i32 } }

/// libvirt's `REMOTE_DOMAIN_SNAPSHOT_LIST_MAX`.
pub const DOMAIN_SNAPSHOT_LIST_MAX: usize = 16384;

xdr_struct! {
    /// A snapshot handle (`remote_nonnull_domain_snapshot`): its name and its domain.
    pub struct DomainSnapshot {
        pub name: String,
        pub dom: Domain,
    }
}
xdr_struct! { pub struct DomainSnapshotCreateXmlArgs { pub dom: Domain, pub xml_desc: String, pub flags: u32 } }
xdr_struct! {
/// Returns that are a snapshot handle (create, lookup, current, parent).
pub struct DomainSnapshotRet { pub snap: DomainSnapshot } }
xdr_struct! {
/// Arguments that are a snapshot handle and flags.
pub struct DomainSnapshotFlagsArgs { pub snap: DomainSnapshot, pub flags: u32 } }
xdr_struct! { pub struct DomainSnapshotListNamesArgs { pub dom: Domain, pub maxnames: i32, pub flags: u32 } }
xdr_struct! { pub struct DomainSnapshotListChildrenNamesArgs { pub snap: DomainSnapshot, pub maxnames: i32, pub flags: u32 } }
xdr_struct! { pub struct DomainSnapshotListNamesRet { pub names: Array<String, DOMAIN_SNAPSHOT_LIST_MAX> } }
xdr_struct! { pub struct DomainSnapshotLookupByNameArgs { pub dom: Domain, pub name: String, pub flags: u32 } }
xdr_struct! { pub struct DomainListAllSnapshotsArgs { pub dom: Domain, pub need_results: i32, pub flags: u32 } }
xdr_struct! { pub struct DomainSnapshotListAllChildrenArgs { pub snap: DomainSnapshot, pub need_results: i32, pub flags: u32 } }
xdr_struct! {
    pub struct DomainListAllSnapshotsRet {
        pub snapshots: Array<DomainSnapshot, DOMAIN_SNAPSHOT_LIST_MAX>,
        pub ret: i32,
    }
}
xdr_struct! {
/// Returns that are one int (HAS_CURRENT_SNAPSHOT, IS_CURRENT, HAS_METADATA, NUM_CHILDREN).
pub struct IntRet { pub value: i32 } }
xdr_struct! {
    pub struct DomainGetSecurityLabelRet {
        pub label: CharArray<SECURITY_LABEL_MAX>,
        pub enforcing: i32,
    }
}
xdr_struct! { pub struct DomainGetMessagesRet { pub msgs: Array<String, DOMAIN_MESSAGES_MAX> } }
xdr_struct! {
    pub struct DomainGetMetadataArgs {
        pub dom: Domain,
        pub type_: i32,
        pub uri: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainGetMetadataRet { pub metadata: String } }
xdr_struct! {
    pub struct DomainSetMetadataArgs {
        pub dom: Domain,
        pub type_: i32,
        pub metadata: Option<String>,
        pub key: Option<String>,
        pub uri: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! {
    /// `DOMAIN_EVENT_CALLBACK_METADATA_CHANGE`.
    pub struct DomainEventCallbackMetadataChangeMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub type_: i32,
        pub nsuri: Option<String>,
    }
}

xdr_struct! { pub struct EventRegisterAnyArgs { pub event_id: i32 } }
xdr_struct! {
    pub struct EventCallbackRegisterAnyArgs {
        pub event_id: i32,
        pub dom: Option<Domain>,
    }
}
xdr_struct! { pub struct EventCallbackRegisterAnyRet { pub callback_id: i32 } }
xdr_struct! { pub struct EventCallbackDeregisterAnyArgs { pub callback_id: i32 } }
xdr_struct! {
    /// Legacy lifecycle event message (procedure 107).
    pub struct DomainEventLifecycleMsg {
        pub dom: Domain,
        pub event: i32,
        pub detail: i32,
    }
}
xdr_struct! {
    /// Lifecycle event for a callback registered with procedure 316 (procedure 318).
    pub struct DomainEventCallbackLifecycleMsg {
        pub callback_id: i32,
        pub msg: DomainEventLifecycleMsg,
    }
}

xdr_struct! {
    /// `DOMAIN_ATTACH_DEVICE` and `DOMAIN_DETACH_DEVICE`.
    pub struct DomainDeviceArgs {
        pub dom: Domain,
        pub xml: String,
    }
}

xdr_struct! {
    /// `DOMAIN_ATTACH_DEVICE_FLAGS`, `DOMAIN_DETACH_DEVICE_FLAGS`,
    /// `DOMAIN_UPDATE_DEVICE_FLAGS`; `DOMAIN_DETACH_DEVICE_ALIAS` (`xml` is the alias).
    pub struct DomainDeviceFlagsArgs {
        pub dom: Domain,
        pub xml: String,
        pub flags: u32,
    }
}

xdr_struct! {
    /// `DOMAIN_EVENT_DEVICE_REMOVED` (a legacy registration's message).
    pub struct DomainEventDeviceRemovedMsg {
        pub dom: Domain,
        pub dev_alias: String,
    }
}

xdr_struct! {
    pub struct DomainEventCallbackDeviceRemovedMsg {
        pub callback_id: i32,
        pub msg: DomainEventDeviceRemovedMsg,
    }
}

// ---------------------------------------------------------------------------
// Block jobs
// ---------------------------------------------------------------------------

/// libvirt's `REMOTE_DOMAIN_BLOCK_COPY_PARAMETERS_MAX`.
pub const DOMAIN_BLOCK_COPY_PARAMETERS_MAX: usize = 16;

xdr_struct! {
/// BLOCK_JOB_ABORT and GET_BLOCK_JOB_INFO: a disk (target or image path) and flags.
pub struct DomainBlockJobArgs { pub dom: Domain, pub path: String, pub flags: u32 } }
xdr_struct! {
    pub struct DomainGetBlockJobInfoRet {
        pub found: i32,
        pub type_: i32,
        pub bandwidth: u64,
        pub cur: u64,
        pub end: u64,
    }
}
xdr_struct! {
/// BLOCK_JOB_SET_SPEED and BLOCK_PULL.
pub struct DomainBlockBandwidthArgs { pub dom: Domain, pub path: String, pub bandwidth: u64, pub flags: u32 } }
xdr_struct! {
    pub struct DomainBlockRebaseArgs {
        pub dom: Domain,
        pub path: String,
        pub base: Option<String>,
        pub bandwidth: u64,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainBlockCopyArgs {
        pub dom: Domain,
        pub path: String,
        pub destxml: String,
        pub params: Array<crate::typed::TypedParam, DOMAIN_BLOCK_COPY_PARAMETERS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainBlockCommitArgs {
        pub dom: Domain,
        pub disk: String,
        pub base: Option<String>,
        pub top: Option<String>,
        pub bandwidth: u64,
        pub flags: u32,
    }
}
xdr_struct! {
    /// `DOMAIN_EVENT_BLOCK_JOB` (legacy); in `DOMAIN_EVENT_CALLBACK_BLOCK_JOB` after the
    /// callback id. `path` is the disk's image.
    pub struct DomainEventBlockJobMsg {
        pub dom: Domain,
        pub path: String,
        pub type_: i32,
        pub status: i32,
    }
}
xdr_struct! {
    pub struct DomainEventCallbackBlockJobMsg {
        pub callback_id: i32,
        pub msg: DomainEventBlockJobMsg,
    }
}
xdr_struct! {
    /// `DOMAIN_EVENT_BLOCK_JOB_2`: the disk by its target.
    pub struct DomainEventBlockJob2Msg {
        pub callback_id: i32,
        pub dom: Domain,
        pub dst: String,
        pub type_: i32,
        pub status: i32,
    }
}

// ---------------------------------------------------------------------------
// The guest agent
// ---------------------------------------------------------------------------

pub const DOMAIN_FSFREEZE_MOUNTPOINTS_MAX: usize = 256;
pub const DOMAIN_FSINFO_MAX: usize = 256;
pub const DOMAIN_FSINFO_DISKS_MAX: usize = 256;
pub const DOMAIN_GUEST_INFO_PARAMS_MAX: usize = 2048;

xdr_struct! {
/// FSFREEZE and FSTHAW.
pub struct DomainFsfreezeArgs {
    pub dom: Domain,
    pub mountpoints: Array<String, DOMAIN_FSFREEZE_MOUNTPOINTS_MAX>,
    pub flags: u32,
} }
xdr_struct! { pub struct DomainFsfreezeRet { pub filesystems: i32 } }
xdr_struct! { pub struct DomainGetTimeRet { pub seconds: i64, pub nseconds: u32 } }
xdr_struct! { pub struct DomainSetTimeArgs { pub dom: Domain, pub seconds: i64, pub nseconds: u32, pub flags: u32 } }
xdr_struct! {
    pub struct DomainSetUserPasswordArgs {
        pub dom: Domain,
        pub user: Option<String>,
        pub password: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainGetHostnameRet { pub hostname: String } }
xdr_struct! {
    pub struct DomainFsinfo {
        pub mountpoint: String,
        pub name: String,
        pub fstype: String,
        pub dev_aliases: Array<String, DOMAIN_FSINFO_DISKS_MAX>,
    }
}
xdr_struct! { pub struct DomainGetFsinfoRet { pub info: Array<DomainFsinfo, DOMAIN_FSINFO_MAX>, pub ret: u32 } }
xdr_struct! { pub struct DomainGetGuestInfoArgs { pub dom: Domain, pub types: u32, pub flags: u32 } }
xdr_struct! {
    pub struct DomainGetGuestInfoRet {
        pub params: Array<crate::typed::TypedParam, DOMAIN_GUEST_INFO_PARAMS_MAX>,
    }
}
xdr_struct! {
    /// `DOMAIN_EVENT_MEMORY_DEVICE_SIZE_CHANGE`: a virtio-mem device's size (KiB) now.
    pub struct DomainEventMemoryDeviceSizeChangeMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub alias: String,
        pub size: u64,
    }
}
xdr_struct! {
    /// `DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE`: connected 1 / disconnected 2; the reason:
    /// unknown 0, domain started 1, channel 2.
    pub struct DomainEventCallbackAgentLifecycleMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub state: i32,
        pub reason: i32,
    }
}
xdr_struct! {
    /// QEMU program, `QEMU_PROC_DOMAIN_AGENT_COMMAND`.
    pub struct QemuDomainAgentCommandArgs {
        pub dom: Domain,
        pub cmd: String,
        pub timeout: i32,
        pub flags: u32,
    }
}
xdr_struct! { pub struct QemuDomainAgentCommandRet { pub result: Option<String> } }
xdr_struct! {
    /// QEMU program, `QEMU_PROC_DOMAIN_MONITOR_COMMAND`.
    pub struct QemuDomainMonitorCommandArgs {
        pub dom: Domain,
        pub cmd: String,
        pub flags: u32,
    }
}
xdr_struct! { pub struct QemuDomainMonitorCommandRet { pub result: String } }
/// `VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP`: the command is for the human monitor.
pub const QEMU_MONITOR_COMMAND_HMP: u32 = 1;

/// `virDomainBlockJobType`, `virConnectDomainEventBlockJobStatus` and the block job flags.
pub mod block_job {
    pub const TYPE_PULL: i32 = 1;
    pub const TYPE_COPY: i32 = 2;
    pub const TYPE_COMMIT: i32 = 3;
    pub const TYPE_ACTIVE_COMMIT: i32 = 4;
    pub const COMPLETED: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const CANCELED: i32 = 2;
    pub const READY: i32 = 3;
    pub const ABORT_ASYNC: u32 = 1;
    pub const ABORT_PIVOT: u32 = 2;
    pub const INFO_BANDWIDTH_BYTES: u32 = 1;
    pub const SPEED_BANDWIDTH_BYTES: u32 = 1;
    pub const PULL_BANDWIDTH_BYTES: u32 = 64;
    pub const REBASE_SHALLOW: u32 = 1;
    pub const REBASE_REUSE_EXT: u32 = 2;
    pub const REBASE_COPY_RAW: u32 = 4;
    pub const REBASE_COPY: u32 = 8;
    pub const REBASE_RELATIVE: u32 = 16;
    pub const REBASE_COPY_DEV: u32 = 32;
    pub const REBASE_BANDWIDTH_BYTES: u32 = 64;
    pub const COMMIT_SHALLOW: u32 = 1;
    pub const COMMIT_DELETE: u32 = 2;
    pub const COMMIT_ACTIVE: u32 = 4;
    pub const COMMIT_RELATIVE: u32 = 8;
    pub const COMMIT_BANDWIDTH_BYTES: u32 = 16;
    pub const COPY_SHALLOW: u32 = 1;
    pub const COPY_REUSE_EXT: u32 = 2;
    pub const COPY_TRANSIENT_JOB: u32 = 4;
    pub const COPY_SYNCHRONOUS_WRITES: u32 = 8;
}

xdr_struct! {
    /// `DOMAIN_EVENT_CALLBACK_DEVICE_ADDED` and `…_DEVICE_REMOVAL_FAILED`.
    pub struct DomainEventCallbackDeviceMsg {
        pub callback_id: i32,
        pub dom: Domain,
        pub dev_alias: String,
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Most memory statistics one `DOMAIN_MEMORY_STATS` reply holds.
pub const DOMAIN_MEMORY_STATS_MAX: usize = 1024;
/// Most typed parameters one `DOMAIN_BLOCK_STATS_FLAGS` reply holds.
pub const DOMAIN_BLOCK_STATS_PARAMETERS_MAX: usize = 16;
/// Most typed parameters of one domain's `CONNECT_GET_ALL_DOMAIN_STATS` record.
pub const CONNECT_GET_ALL_DOMAIN_STATS_MAX: usize = 262_144;

xdr_struct! {
    /// `DOMAIN_BLOCK_STATS` and `DOMAIN_INTERFACE_STATS` (`path` is the disk or the
    /// interface).
    pub struct DomainPathArgs {
        pub dom: Domain,
        pub path: String,
    }
}
xdr_struct! {
    /// `DOMAIN_BLOCK_STATS`: -1 for what is not known.
    pub struct DomainBlockStatsRet {
        pub rd_req: i64,
        pub rd_bytes: i64,
        pub wr_req: i64,
        pub wr_bytes: i64,
        pub errs: i64,
    }
}
xdr_struct! {
    /// `DOMAIN_INTERFACE_STATS`, from the guest's side: `rx` is what the guest received.
    pub struct DomainInterfaceStatsRet {
        pub rx_bytes: i64,
        pub rx_packets: i64,
        pub rx_errs: i64,
        pub rx_drop: i64,
        pub tx_bytes: i64,
        pub tx_packets: i64,
        pub tx_errs: i64,
        pub tx_drop: i64,
    }
}
xdr_struct! {
    pub struct DomainMemoryStatsArgs {
        pub dom: Domain,
        pub max_stats: u32,
        pub flags: u32,
    }
}
xdr_struct! {
    /// One `virDomainMemoryStatStruct`: a [`memory_stat`] tag and its value.
    pub struct DomainMemoryStat {
        pub tag: i32,
        pub val: u64,
    }
}
xdr_struct! {
    pub struct DomainMemoryStatsRet {
        pub stats: Array<DomainMemoryStat, DOMAIN_MEMORY_STATS_MAX>,
    }
}
xdr_struct! {
    pub struct DomainScreenshotArgs {
        pub dom: Domain,
        pub screen: u32,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainScreenshotRet { pub mime: Option<String> } }
/// `virDomainInterfaceAddressesSource`.
pub mod ifaddr_source {
    pub const LEASE: u32 = 0;
    pub const AGENT: u32 = 1;
    pub const ARP: u32 = 2;
}
pub const DOMAIN_INTERFACE_MAX: usize = 2048;
pub const DOMAIN_IP_ADDR_MAX: usize = 2048;
xdr_struct! {
    pub struct DomainInterfaceAddressesArgs {
        pub dom: Domain,
        pub source: u32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainIpAddr {
        /// `VIR_IP_ADDR_TYPE_IPV4` 0, `_IPV6` 1.
        pub type_: i32,
        pub addr: String,
        pub prefix: u32,
    }
}
xdr_struct! {
    pub struct DomainInterface {
        pub name: String,
        pub hwaddr: Option<String>,
        pub addrs: Array<DomainIpAddr, DOMAIN_IP_ADDR_MAX>,
    }
}
xdr_struct! {
    pub struct DomainInterfaceAddressesRet {
        pub ifaces: Array<DomainInterface, DOMAIN_INTERFACE_MAX>,
    }
}
pub const DOMAIN_SEND_KEY_MAX: usize = 16;
xdr_struct! {
    pub struct DomainSendKeyArgs {
        pub dom: Domain,
        pub codeset: u32,
        pub holdtime: u32,
        pub keycodes: Array<u32, DOMAIN_SEND_KEY_MAX>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainSetMemoryArgs { pub dom: Domain, pub memory: u64 } }
xdr_struct! {
    pub struct DomainSetMemoryFlagsArgs {
        pub dom: Domain,
        pub memory: u64,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainSetVcpusArgs { pub dom: Domain, pub nvcpus: u32 } }
xdr_struct! {
    pub struct DomainSetVcpusFlagsArgs {
        pub dom: Domain,
        pub nvcpus: u32,
        pub flags: u32,
    }
}
/// `VIR_DOMAIN_MEM_MAXIMUM`, `VIR_DOMAIN_VCPU_MAXIMUM`, `VIR_DOMAIN_VCPU_GUEST`.
pub const MEM_MAXIMUM: u32 = 4;
pub const VCPU_MAXIMUM: u32 = 4;
pub const VCPU_GUEST: u32 = 8;
pub const VCPUINFO_MAX: usize = 16384;
pub const CPUMAPS_MAX: usize = 8_388_608;
xdr_struct! {
    pub struct DomainGetVcpusArgs {
        pub dom: Domain,
        pub maxinfo: i32,
        pub maplen: i32,
    }
}
xdr_struct! {
    pub struct DomainGetVcpuPinInfoArgs {
        pub dom: Domain,
        pub ncpumaps: i32,
        pub maplen: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainGetVcpuPinInfoRet {
        pub cpumaps: vireo_xdr::Opaque<CPUMAPS_MAX>,
        pub num: i32,
    }
}
xdr_struct! {
    /// `DOMAIN_PIN_VCPU`: virDomainPinVcpu, the running guest's pin (flags LIVE).
    pub struct DomainPinVcpuArgs {
        pub dom: Domain,
        pub vcpu: u32,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
    }
}
xdr_struct! {
    pub struct DomainPinVcpuFlagsArgs {
        pub dom: Domain,
        pub vcpu: u32,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainPinEmulatorArgs {
        pub dom: Domain,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
        pub flags: u32,
    }
}
pub const DOMAIN_GUEST_VCPU_PARAMS_MAX: usize = 64;
xdr_struct! {
    pub struct DomainGetGuestVcpusRet {
        pub params: Array<crate::typed::TypedParam, DOMAIN_GUEST_VCPU_PARAMS_MAX>,
    }
}
xdr_struct! {
    /// SET_GUEST_VCPUS: the guest's vCPUs in `cpumap` (libvirt's list syntax) online
    /// (`state` 1) or offline (0).
    pub struct DomainSetGuestVcpusArgs {
        pub dom: Domain,
        pub cpumap: String,
        pub state: i32,
        pub flags: u32,
    }
}
pub const IOTHREAD_INFO_MAX: usize = 16384;
pub const DOMAIN_IOTHREAD_PARAMS_MAX: usize = 64;
xdr_struct! {
    /// One I/O thread of GET_IOTHREAD_INFO: its id and the host CPUs it may run on.
    pub struct DomainIothreadInfo {
        pub iothread_id: u32,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
    }
}
xdr_struct! { pub struct DomainGetIothreadInfoArgs { pub dom: Domain, pub flags: u32 } }
xdr_struct! {
    pub struct DomainGetIothreadInfoRet {
        pub info: Array<DomainIothreadInfo, IOTHREAD_INFO_MAX>,
        pub ret: u32,
    }
}
xdr_struct! {
    pub struct DomainPinIothreadArgs {
        pub dom: Domain,
        pub iothreads_id: u32,
        pub cpumap: vireo_xdr::Opaque<CPUMAP_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    /// ADD_IOTHREAD and DEL_IOTHREAD.
    pub struct DomainIothreadIdArgs { pub dom: Domain, pub iothread_id: u32, pub flags: u32 }
}
xdr_struct! {
    pub struct DomainSetIothreadParamsArgs {
        pub dom: Domain,
        pub iothread_id: u32,
        pub params: Array<crate::typed::TypedParam, DOMAIN_IOTHREAD_PARAMS_MAX>,
        pub flags: u32,
    }
}
/// libvirt's `REMOTE_DOMAIN_{SCHEDULER,MEMORY,BLKIO}_PARAMETERS_MAX`.
pub const DOMAIN_TUNE_PARAMETERS_MAX: usize = 16;
xdr_struct! {
    /// GET_SCHEDULER_TYPE's reply: the scheduler's name and how many parameters it has.
    pub struct DomainGetSchedulerTypeRet { pub kind: String, pub nparams: i32 }
}
xdr_struct! {
    /// GET_SCHEDULER_PARAMETERS (no flags: the running domain, else its definition).
    pub struct DomainGetSchedulerParametersArgs { pub dom: Domain, pub nparams: i32 }
}
xdr_struct! {
    pub struct DomainGetSchedulerParametersFlagsArgs { pub dom: Domain, pub nparams: i32, pub flags: u32 }
}
xdr_struct! {
    /// The reply of both GET_SCHEDULER_PARAMETERS calls.
    pub struct DomainGetSchedulerParametersRet {
        pub params: Array<crate::typed::TypedParam, DOMAIN_TUNE_PARAMETERS_MAX>,
    }
}
xdr_struct! {
    pub struct DomainSetSchedulerParametersArgs {
        pub dom: Domain,
        pub params: Array<crate::typed::TypedParam, DOMAIN_TUNE_PARAMETERS_MAX>,
    }
}
xdr_struct! {
    /// SET_SCHEDULER_PARAMETERS_FLAGS, SET_MEMORY_PARAMETERS and SET_BLKIO_PARAMETERS.
    pub struct DomainSetTuneParametersArgs {
        pub dom: Domain,
        pub params: Array<crate::typed::TypedParam, DOMAIN_TUNE_PARAMETERS_MAX>,
        pub flags: u32,
    }
}
xdr_struct! {
    /// GET_MEMORY_PARAMETERS and GET_BLKIO_PARAMETERS; `nparams` 0 asks how many there are.
    pub struct DomainGetTuneParametersArgs { pub dom: Domain, pub nparams: i32, pub flags: u32 }
}
xdr_struct! {
    pub struct DomainGetTuneParametersRet {
        pub params: Array<crate::typed::TypedParam, DOMAIN_TUNE_PARAMETERS_MAX>,
        pub nparams: i32,
    }
}
xdr_struct! { pub struct DomainGetEmulatorPinInfoArgs { pub dom: Domain, pub maplen: i32, pub flags: u32 } }
xdr_struct! {
    pub struct DomainGetEmulatorPinInfoRet {
        pub cpumaps: vireo_xdr::Opaque<CPUMAPS_MAX>,
        pub ret: i32,
    }
}
xdr_struct! {
    pub struct VcpuInfo {
        pub number: u32,
        pub state: i32,
        pub cpu_time: u64,
        pub cpu: i32,
    }
}
xdr_struct! {
    pub struct DomainGetVcpusRet {
        pub info: Array<VcpuInfo, VCPUINFO_MAX>,
        pub cpumaps: vireo_xdr::Opaque<CPUMAPS_MAX>,
    }
}

/// `virDomainJobType`, and `VIR_DOMAIN_JOB_OPERATION_*`.
/// `virDomainMessageType`: what `virDomainGetMessages` tells (none: both).
pub mod message {
    pub const DEPRECATION: u32 = 1;
    pub const TAINTING: u32 = 2;
}

pub mod job {
    pub const NONE: i32 = 0;
    pub const UNBOUNDED: i32 = 2;
    pub const OPERATION_SAVE: i32 = 2;
    pub const OPERATION_SNAPSHOT: i32 = 6;
    pub const OPERATION_SNAPSHOT_REVERT: i32 = 7;
    pub const OPERATION_SNAPSHOT_DELETE: i32 = 10;
    /// A job that ended well (`VIR_DOMAIN_JOB_COMPLETED`), or not (`_FAILED`).
    pub const COMPLETED: i32 = 3;
    pub const FAILED: i32 = 4;
    /// `VIR_DOMAIN_JOB_STATS_COMPLETED`, `VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED`.
    pub const STATS_COMPLETED: u32 = 1;
    pub const STATS_KEEP_COMPLETED: u32 = 2;
}
pub const DOMAIN_JOB_STATS_MAX: usize = 64;
xdr_struct! {
    pub struct DomainGetJobInfoRet {
        pub type_: i32,
        pub time_elapsed: u64,
        pub time_remaining: u64,
        pub data_total: u64,
        pub data_processed: u64,
        pub data_remaining: u64,
        pub mem_total: u64,
        pub mem_processed: u64,
        pub mem_remaining: u64,
        pub file_total: u64,
        pub file_processed: u64,
        pub file_remaining: u64,
    }
}
xdr_struct! {
    pub struct DomainGetJobStatsRet {
        pub type_: i32,
        pub params: Array<crate::typed::TypedParam, DOMAIN_JOB_STATS_MAX>,
    }
}
xdr_struct! {
    pub struct DomainGetBlockInfoArgs {
        pub dom: Domain,
        pub path: String,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainGetBlockInfoRet {
        pub allocation: u64,
        pub capacity: u64,
        pub physical: u64,
    }
}
xdr_struct! {
    pub struct DomainBlockStatsFlagsArgs {
        pub dom: Domain,
        pub path: String,
        pub nparams: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainBlockStatsFlagsRet {
        pub params: Array<crate::typed::TypedParam, DOMAIN_BLOCK_STATS_PARAMETERS_MAX>,
        pub nparams: i32,
    }
}
xdr_struct! {
    pub struct DomainSetMemoryStatsPeriodArgs {
        pub dom: Domain,
        pub period: i32,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct ConnectGetAllDomainStatsArgs {
        pub doms: Array<Domain, DOMAIN_LIST_MAX>,
        pub stats: u32,
        pub flags: u32,
    }
}
xdr_struct! {
    /// One domain's statistics (`remote_domain_stats_record`).
    pub struct DomainStatsRecord {
        pub dom: Domain,
        pub params: Array<crate::typed::TypedParam, CONNECT_GET_ALL_DOMAIN_STATS_MAX>,
    }
}
xdr_struct! {
    pub struct ConnectGetAllDomainStatsRet {
        pub ret_stats: Array<DomainStatsRecord, DOMAIN_LIST_MAX>,
    }
}

/// `virDomainMemoryStatTags`.
pub mod memory_stat {
    pub const SWAP_IN: i32 = 0;
    pub const SWAP_OUT: i32 = 1;
    pub const MAJOR_FAULT: i32 = 2;
    pub const MINOR_FAULT: i32 = 3;
    pub const UNUSED: i32 = 4;
    pub const AVAILABLE: i32 = 5;
    pub const ACTUAL_BALLOON: i32 = 6;
    pub const RSS: i32 = 7;
    pub const USABLE: i32 = 8;
    pub const LAST_UPDATE: i32 = 9;
    pub const DISK_CACHES: i32 = 10;
    pub const HUGETLB_PGALLOC: i32 = 11;
    pub const HUGETLB_PGFAIL: i32 = 12;
}

/// `virDomainStatsTypes`: the groups `CONNECT_GET_ALL_DOMAIN_STATS` reports.
pub mod stats_group {
    pub const STATE: u32 = 1 << 0;
    pub const CPU_TOTAL: u32 = 1 << 1;
    pub const BALLOON: u32 = 1 << 2;
    pub const VCPU: u32 = 1 << 3;
    pub const INTERFACE: u32 = 1 << 4;
    pub const BLOCK: u32 = 1 << 5;
    pub const IOTHREAD: u32 = 1 << 7;
    /// The groups Vireo reports.
    pub const SUPPORTED: u32 = STATE | CPU_TOTAL | BALLOON | VCPU | INTERFACE | BLOCK | IOTHREAD;
}

/// `virConnectGetAllDomainStatsFlags`.
pub mod stats_flag {
    pub const ACTIVE: u32 = 1 << 0;
    pub const INACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const RUNNING: u32 = 1 << 4;
    pub const PAUSED: u32 = 1 << 5;
    pub const SHUTOFF: u32 = 1 << 6;
    pub const OTHER: u32 = 1 << 7;
    pub const NOWAIT: u32 = 1 << 29;
    pub const BACKING: u32 = 1 << 30;
    pub const ENFORCE_STATS: u32 = 1 << 31;
    /// The filters, which are `virConnectListAllDomains`' flags of the same meaning.
    pub const FILTERS: u32 =
        ACTIVE | INACTIVE | PERSISTENT | TRANSIENT | RUNNING | PAUSED | SHUTOFF | OTHER;
}

// ---------------------------------------------------------------------------
// Save and restore
// ---------------------------------------------------------------------------

xdr_struct! { pub struct DomainSaveArgs { pub dom: Domain, pub to: String } }
xdr_struct! { pub struct DomainRestoreArgs { pub from: String } }
xdr_struct! {
    pub struct DomainSaveFlagsArgs {
        pub dom: Domain,
        pub to: String,
        pub dxml: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainRestoreFlagsArgs {
        pub from: String,
        pub dxml: Option<String>,
        pub flags: u32,
    }
}
xdr_struct! { pub struct DomainSaveImageGetXmlDescArgs { pub file: String, pub flags: u32 } }
xdr_struct! { pub struct DomainSaveImageGetXmlDescRet { pub xml: String } }
xdr_struct! {
    pub struct DomainSaveImageDefineXmlArgs {
        pub file: String,
        pub dxml: String,
        pub flags: u32,
    }
}
xdr_struct! {
    pub struct DomainManagedSaveDefineXmlArgs {
        pub dom: Domain,
        pub dxml: Option<String>,
        pub flags: u32,
    }
}

/// `virDomainSaveRestoreFlags`.
pub mod save_flags {
    pub const BYPASS_CACHE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const PAUSED: u32 = 4;
}
