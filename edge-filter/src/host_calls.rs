//! The host calls the proxy-wasm SDK does not offer as the filter needs
//! them: shared data whose write status is read rather than panicked on,
//! request headers read in place, local responses with a header map written
//! once, and the clock in microseconds. Raw ABI,
//! kept apart from the contexts in `filter`.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

use crate::store::{SetError, SharedStore};

/// Shared data through the host.
pub struct HostStore;

// The SDK's `set_shared_data` panics on any status but OK and CAS_MISMATCH,
// so a host that refuses a write it cannot store (INTERNAL_FAILURE from
// `seckill-edge` when its shared memory is full) would trap the VM. The
// status is read here instead.
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_set_shared_data"]
    fn set_shared_data_status(key: *const u8, key_size: usize, value: *const u8, value_size: usize, cas: u32) -> u32;
}

// The SDK's `send_http_response` takes a `Vec` of pairs and serialises it
// again, and panics on a status it does not expect; the edge filter hands
// over a map it wrote itself (`LocalReply::header_map`).
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_send_local_response"]
    #[allow(clippy::too_many_arguments)]
    fn send_local_response_raw(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Answers the request with `status`, `header_map` (already in the host's
/// map format) and `body`; `false` if the host refused.
pub fn send_local_response(status: u16, header_map: &[u8], body: &[u8]) -> bool {
    // SAFETY: all three slices outlive the call; the host only reads them.
    let status = unsafe {
        send_local_response_raw(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            header_map.as_ptr(),
            header_map.len(),
            -1,
        )
    };
    status == STATUS_OK
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_get_header_map_pairs"]
    fn get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The request headers as the host serialises them, one buffer the VM owns
/// (read in place by `seckill_api::header_map::pairs`).
pub fn request_header_bytes() -> Vec<u8> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: the host writes a pointer it allocated through this VM's
    // allocator (proxy_on_memory_allocate) and its length; ownership passes
    // to us, as in the SDK's own `get_map_bytes`.
    unsafe {
        if get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size) != STATUS_OK || data.is_null()
        {
            return Vec::new();
        }
        Vec::from_raw_parts(data, size, size)
    }
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    #[link_name = "proxy_get_property"]
    fn get_property_raw(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The `source.address` property (the peer), without the SDK's `Vec` for
/// the path: the path is a constant, serialised as the SDK does (parts NUL-separated).
pub fn source_address() -> Option<Vec<u8>> {
    const PATH: &[u8] = b"source\0address";
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: as in `request_header_bytes`: the host allocates the value in
    // this VM's memory and ownership passes to us.
    unsafe {
        if get_property_raw(PATH.as_ptr(), PATH.len(), &mut data, &mut size) != STATUS_OK || data.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

const STATUS_OK: u32 = 0;
const STATUS_CAS_MISMATCH: u32 = 8;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => (value.filter(|v| !v.is_empty()), cas),
            Err(_) => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        // SAFETY: both slices outlive the call; the host only reads them.
        let status =
            unsafe { set_shared_data_status(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas.unwrap_or(0)) };
        match status {
            STATUS_OK => Ok(()),
            STATUS_CAS_MISMATCH => Err(SetError::CasMismatch),
            // Anything else: not stored, and retrying will not change that.
            _ => Err(SetError::Full),
        }
    }
}

/// The host's clock, in microseconds since the Unix epoch (0 if it has none).
pub fn now_us() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
