//! Other devices: the memory balloon and RNGs. (`vmcoreinfo` is a single `-device`
//! written by `Builder::run`, from `<features>`.)

use vireo_xml::{MemballoonModel, RngBackendModel, RngModel};

use super::util::{on_off, Opts};
use super::{unsupported, Builder, Result};

impl<'a> Builder<'a> {
    pub(super) fn memballoon(&mut self) -> Result<()> {
        let def = self.def;
        let Some(m) = &def.devices.memballoon else {
            return Ok(());
        };
        let what = "<memballoon>";
        match m.model {
            MemballoonModel::Virtio => {}
            MemballoonModel::None => return Ok(()),
            other => {
                return unsupported(format!(
                    "<memballoon model='{other}'> is not supported (virtio or none)"
                ))
            }
        }
        // <stats period=N> is no argument: the shim sets it over QMP before the CPUs run.
        let addr = self.pci.place(m.address.as_ref(), what)?;
        let dev = Opts::new("virtio-balloon-pci")
            .set("id", "balloon0")
            .set_opt("deflate-on-oom", m.autodeflate.map(on_off))
            .set_opt("free-page-reporting", m.free_page_reporting.map(on_off))
            .raw(&addr)
            .done();
        self.arg2("-device", dev);
        Ok(())
    }

    pub(super) fn rngs(&mut self) -> Result<()> {
        let def = self.def;
        for (i, r) in def.devices.rngs.iter().enumerate() {
            let what = format!("<rng> {i}");
            if r.model != RngModel::Virtio {
                return unsupported(format!(
                    "<rng model='{}'> is not supported (virtio)",
                    r.model
                ));
            }
            let obj_id = format!("objrng{i}");
            let object = match r.backend.model {
                RngBackendModel::Random => {
                    let path = r.backend.path.as_deref().unwrap_or("/dev/urandom");
                    if !matches!(path, "/dev/urandom" | "/dev/random" | "/dev/hwrng") {
                        return unsupported(format!(
                            "{what}: backend '{path}' is not allowed (/dev/urandom, /dev/random, /dev/hwrng)"
                        ));
                    }
                    Opts::new("rng-random")
                        .set("id", &obj_id)
                        .set("filename", path)
                        .done()
                }
                RngBackendModel::Builtin => Opts::new("rng-builtin").set("id", &obj_id).done(),
                RngBackendModel::Egd => {
                    return unsupported(format!("{what}: the egd backend is not supported"))
                }
            };
            self.arg2("-object", object);
            let addr = self.pci.place(r.address.as_ref(), &what)?;
            let mut o = Opts::new("virtio-rng-pci")
                .set("rng", &obj_id)
                .set("id", format!("rng{i}"));
            if let Some(rate) = &r.rate {
                o = o
                    .set("max-bytes", rate.bytes)
                    .set("period", rate.period.unwrap_or(1000));
            }
            self.arg2("-device", o.raw(&addr).done());
        }
        Ok(())
    }
}
