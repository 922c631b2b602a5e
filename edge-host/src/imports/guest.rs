//! What every family of imports shares: the caller type, the linker wrapper
//! that records each name it defines, and the only ways a host function
//! touches guest memory. Kept apart from the families so that they point at
//! it and never at each other.
//!
//! Guest pointers that fall outside linear memory trap the VM: that is a
//! broken module, and the SDK has no status for it.

use crate::abi::{Fields, Status};
use crate::host::HostState;
use std::ops::Range;
use wasmtime::{Caller, IntoFunc, Linker, Memory, Result, format_err};

pub(super) type C<'a> = Caller<'a, HostState>;

pub(super) struct Defs<'l> {
    pub(super) linker: &'l mut Linker<HostState>,
    pub(super) names: Vec<(&'static str, &'static str)>,
}

impl Defs<'_> {
    pub(super) fn func<P, A>(
        &mut self,
        module: &'static str,
        name: &'static str,
        f: impl IntoFunc<HostState, P, A>,
    ) -> Result<()> {
        self.linker.func_wrap(module, name, f)?;
        self.names.push((module, name));
        Ok(())
    }
}

fn memory(c: &C<'_>) -> Result<Memory> {
    c.data().memory.ok_or_else(|| format_err!("the module exports no `memory`"))
}

fn range(len: usize, ptr: i32, size: i32) -> Result<Range<usize>> {
    let (p, n) = (ptr as u32 as usize, size as u32 as usize);
    match p.checked_add(n) {
        Some(end) if end <= len => Ok(p..end),
        _ => Err(format_err!("invalid memory access: {n} bytes at {p:#x} (memory is {len} bytes)")),
    }
}

/// Copies guest bytes out.
pub(super) fn read(c: &mut C<'_>, ptr: i32, size: i32) -> Result<Vec<u8>> {
    let mem = memory(c)?;
    let data = mem.data(&*c);
    Ok(data[range(data.len(), ptr, size)?].to_vec())
}

/// Runs `f` on guest memory and the host state together (no copy).
pub(super) fn with_mem<R>(c: &mut C<'_>, f: impl FnOnce(&mut [u8], &mut HostState) -> Result<R>) -> Result<R> {
    let mem = memory(c)?;
    let (data, state) = mem.data_and_store_mut(c);
    f(data, state)
}

pub(super) fn slice(data: &[u8], ptr: i32, size: i32) -> Result<&[u8]> {
    Ok(&data[range(data.len(), ptr, size)?])
}

pub(super) fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<()> {
    let mem = memory(c)?;
    let data = mem.data_mut(&mut *c);
    let r = range(data.len(), ptr, bytes.len() as i32)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

pub(super) fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<()> {
    write(c, ptr, &v.to_le_bytes())
}

pub(super) fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<()> {
    write(c, ptr, &v.to_le_bytes())
}

/// Allocates `bytes.len()` in the guest (`proxy_on_memory_allocate` or
/// `malloc`), copies `bytes` there and writes the pointer and size to the
/// return slots. With `null_if_empty`, an empty value is returned as a null
/// pointer without allocating (the SDK reads that as empty).
pub(super) fn give(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32, null_if_empty: bool) -> Result<()> {
    let ptr = if bytes.is_empty() && null_if_empty {
        0
    } else {
        let alloc = c.data().alloc.clone().ok_or_else(|| format_err!("the module exports no allocator"))?;
        let p = alloc.call(&mut *c, bytes.len() as i32)?;
        if p == 0 && !bytes.is_empty() {
            return Err(format_err!("the module's allocator returned null for {} bytes", bytes.len()));
        }
        p
    };
    let mem = memory(c)?;
    let data = mem.data_mut(&mut *c);
    if ptr != 0 {
        let r = range(data.len(), ptr, bytes.len() as i32)?;
        data[r].copy_from_slice(bytes);
    }
    let r = range(data.len(), ptr_ptr, 4)?;
    data[r].copy_from_slice(&(ptr as u32).to_le_bytes());
    let r = range(data.len(), size_ptr, 4)?;
    data[r].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    Ok(())
}

pub(super) const OK: i32 = Status::Ok as i32;
pub(super) const NOT_FOUND: i32 = Status::NotFound as i32;
pub(super) const BAD_ARGUMENT: i32 = Status::BadArgument as i32;

pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn parse_map(bytes: &[u8], what: &str) -> Result<Fields> {
    Fields::deserialize(bytes).map_err(|e| format_err!("{what}: {e}"))
}
