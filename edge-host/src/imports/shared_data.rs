//! Shared data and shared queues: the only state VMs share, with Envoy's
//! compare-and-swap and answers (a missing key is NOT_FOUND), except that a
//! full store refuses a write with INTERNAL_FAILURE and an empty value is
//! dropped (see [`crate::shared::SharedData`]).

use super::guest::{C, Defs, NOT_FOUND, OK, give, read, slice, with_mem, write_u32};
use crate::abi::Status;
use crate::shared::SetError;
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
    d.func(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| -> Result<i32> {
            let found = with_mem(&mut c, |data, s| Ok(s.env.shared_data.get(slice(data, kptr, klen)?)))?;
            // A missing key is NOT_FOUND, as Envoy answers it (the SDK reads
            // `(None, None)`, and a filter's next write is unconditional).
            let Some((value, cas)) = found else { return Ok(NOT_FOUND) };
            give(&mut c, &value, ptr_ptr, size_ptr, value.is_empty())?;
            write_u32(&mut c, cas_ptr, cas)?;
            Ok(OK)
        },
    )?;
    d.func(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> Result<i32> {
            with_mem(&mut c, |data, s| {
                let key = slice(data, kptr, klen)?;
                let value = if vlen == 0 { &[][..] } else { slice(data, vptr, vlen)? };
                Ok(match s.env.shared_data.set(key, value, cas as u32) {
                    Ok(()) => OK,
                    Err(SetError::CasMismatch) => Status::CasMismatch.code(),
                    Err(SetError::Full) => {
                        // Not stored, so not OK: a filter told OK would go on as
                        // if its limit's state were kept (and enforce nothing).
                        // The spec names no status for a full store (Envoy's has
                        // no budget; Kong's traps the module), so the generic
                        // failure it is. The Rust SDK panics on it, which traps
                        // that VM: loud rather than silently unlimited. The
                        // edge filter reads the status itself and refuses.
                        let _ = s.env.metrics.increment(s.env.host_metrics.shared_data_rejected, 1);
                        s.shared_rejections += 1;
                        if s.shared_rejections.is_power_of_two() {
                            tracing::warn!(
                                bytes = s.env.shared_data.bytes(),
                                "shared data is full ({} writes refused on this VM)",
                                s.shared_rejections
                            );
                        }
                        Status::InternalFailure.code()
                    }
                })
            })
        },
    )?;
    d.func("env", "proxy_register_shared_queue", |mut c: C<'_>, nptr: i32, nlen: i32, ret: i32| -> Result<i32> {
        let name = read(&mut c, nptr, nlen)?;
        let s = c.data();
        let id = s.env.queues.register(s.env.config.vm_id.as_bytes(), &name, s.queue_notifier.clone(), s.root_id);
        write_u32(&mut c, ret, id)?;
        Ok(OK)
    })?;
    d.func(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vptr: i32, vlen: i32, nptr: i32, nlen: i32, ret: i32| -> Result<i32> {
            let vm_id = read(&mut c, vptr, vlen)?;
            let name = read(&mut c, nptr, nlen)?;
            match c.data().env.queues.resolve(&vm_id, &name) {
                None => Ok(NOT_FOUND),
                Some(id) => {
                    write_u32(&mut c, ret, id)?;
                    Ok(OK)
                }
            }
        },
    )?;
    d.func("env", "proxy_enqueue_shared_queue", |mut c: C<'_>, id: i32, vptr: i32, vlen: i32| -> Result<i32> {
        let value = read(&mut c, vptr, vlen)?;
        Ok(if c.data().env.queues.enqueue(id as u32, value) { OK } else { NOT_FOUND })
    })?;
    d.func("env", "proxy_dequeue_shared_queue", |mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        match c.data().env.queues.dequeue(id as u32) {
            Err(()) => Ok(NOT_FOUND),
            Ok(None) => Ok(Status::Empty.code()),
            Ok(Some(v)) => {
                give(&mut c, &v, ptr_ptr, size_ptr, false)?;
                Ok(OK)
            }
        }
    })?;
    Ok(())
}
