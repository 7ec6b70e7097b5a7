//! Domain XML to QEMU command line (being written).
