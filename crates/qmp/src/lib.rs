//! QMP client (being written).
