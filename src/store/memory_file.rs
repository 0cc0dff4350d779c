//! HDF5 files built in memory, in a [`FileImage`] that the caller keeps and reuses.
//!
//! HDF5's core driver holds a file in memory it allocates itself, and `H5Fget_file_image`
//! copies it out. For a shard of tens of megabytes (above glibc's mmap threshold) both were
//! fresh mappings, faulted in page by page for every shard, with a copy between them. Through
//! HDF5's file image callbacks the driver grows the caller's image instead, so the memory of
//! one shard serves the next and the finished file is already where it is written from.

use super::direct::FileImage;
use crate::error::{Error, Result};
use hdf5_sys::h5::herr_t;
use hdf5_sys::h5fd::{H5FD_file_image_callbacks_t, H5FD_file_image_op_t};
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::path::Path;

/// An open HDF5 file whose bytes are `image`'s; [`MemoryFile::finish`] closes it.
pub struct MemoryFile<'a> {
    // Declared first so that it is closed first: the driver writes into the image until then.
    file: hdf5::File,
    _fapl: hdf5::plist::FileAccess,
    image: *mut FileImage,
    _borrow: PhantomData<&'a mut FileImage>,
}

impl std::ops::Deref for MemoryFile<'_> {
    type Target = hdf5::File;
    fn deref(&self) -> &hdf5::File {
        &self.file
    }
}

impl<'a> MemoryFile<'a> {
    /// Creates an empty file in `image`, with room for `expected` bytes; `name` only names it
    /// (nothing is written there).
    pub fn create(
        name: &Path,
        image: &'a mut FileImage,
        expected: usize,
    ) -> Result<MemoryFile<'a>> {
        let h5err = |e| Error::hdf5(name, e);
        image.resize(0);
        image.reserve(expected);
        let fapl = hdf5::plist::FileAccess::build()
            .core_filebacked(false)
            .finish()
            .map_err(h5err)?;
        let image: *mut FileImage = image;
        let mut callbacks = H5FD_file_image_callbacks_t {
            image_realloc: Some(resize),
            image_free: Some(keep),
            udata_copy: Some(share),
            udata_free: Some(unshare),
            udata: image.cast(),
            ..Default::default()
        };
        let c_name = CString::new(name.to_string_lossy().as_bytes())
            .map_err(|_| Error::Other(format!("{}: a NUL in the name", name.display())))?;
        // SAFETY: `fapl` is a valid file access list and `callbacks` outlives the call (HDF5
        // copies it). The callbacks' `udata` is `image`, borrowed for 'a by the returned
        // value, which closes the file and drops the list (the two users of `udata`) before
        // that borrow ends. The library lock serialises the calls.
        let file = hdf5::sync::sync(|| unsafe {
            if hdf5_sys::h5p::H5Pset_file_image_callbacks(fapl.id(), &mut callbacks) < 0 {
                return Err(Error::Other(format!(
                    "{}: HDF5 refused the file image callbacks",
                    name.display()
                )));
            }
            let id = hdf5_sys::h5f::H5Fcreate(
                c_name.as_ptr(),
                hdf5_sys::h5f::H5F_ACC_TRUNC,
                hdf5_sys::h5p::H5P_DEFAULT,
                fapl.id(),
            );
            hdf5::from_id::<hdf5::File>(id).map_err(h5err)
        })?;
        Ok(MemoryFile {
            file,
            _fapl: fapl,
            image,
            _borrow: PhantomData,
        })
    }

    /// Flushes and closes the file, and cuts the image to the file's length.
    pub fn finish(self) -> Result<()> {
        let MemoryFile {
            file,
            _fapl: fapl,
            image,
            ..
        } = self;
        let name = file.filename();
        file.flush().map_err(|e| Error::hdf5(Path::new(&name), e))?;
        // SAFETY: the file is open; a null buffer asks only for the file's size.
        let size = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5f::H5Fget_file_image(file.id(), std::ptr::null_mut(), 0)
        });
        file.close().map_err(|e| Error::hdf5(Path::new(&name), e))?;
        drop(fapl);
        if size < 0 {
            return Err(Error::Other(format!("{name}: HDF5 cannot size the file")));
        }
        // SAFETY: the file is closed and its access list dropped, so HDF5 holds no pointer
        // to the image, which is still borrowed for 'a.
        unsafe { &mut *image }.resize(size as usize);
        Ok(())
    }
}

/// The driver's realloc: the image grows (or shrinks) to `size` bytes, keeping its contents.
extern "C" fn resize(
    _mem: *mut c_void,
    size: usize,
    _op: H5FD_file_image_op_t,
    udata: *mut c_void,
) -> *mut c_void {
    // SAFETY: `udata` is the image `MemoryFile::create` borrowed, alive while HDF5 calls this.
    let image = unsafe { &mut *udata.cast::<FileImage>() };
    // A size the allocator refuses is HDF5's allocation error (null), not an unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        image.resize(size);
        image.bytes_mut().as_mut_ptr().cast()
    }))
    .unwrap_or(std::ptr::null_mut())
}

/// The driver's free: the memory is the image's, and stays with it.
extern "C" fn keep(_mem: *mut c_void, _op: H5FD_file_image_op_t, _udata: *mut c_void) -> herr_t {
    0
}

/// Copies of the access list share the one image.
unsafe extern "C" fn share(udata: *mut c_void) -> *mut c_void {
    udata
}

unsafe extern "C" fn unshare(_udata: *mut c_void) -> herr_t {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a chunked, compressed dataset and an attribute, built in `image`; returns
    /// the bytes HDF5 itself copies out of the open file after its flush.
    fn build(image: &mut FileImage, values: &[f32]) -> Vec<u8> {
        let file = MemoryFile::create(Path::new("test.h5"), image, 0).unwrap();
        let ds = file
            .new_dataset::<f32>()
            .shape([values.len()])
            .chunk([64])
            .lzf()
            .create("x")
            .unwrap();
        ds.write_raw(values).unwrap();
        file.new_attr::<u64>()
            .create("n")
            .and_then(|a| a.write_scalar(&(values.len() as u64)))
            .unwrap();
        file.flush().unwrap();
        let size = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5f::H5Fget_file_image(file.id(), std::ptr::null_mut(), 0)
        });
        let mut copy = vec![0u8; size as usize];
        let got = hdf5::sync::sync(|| unsafe {
            hdf5_sys::h5f::H5Fget_file_image(file.id(), copy.as_mut_ptr().cast(), copy.len())
        });
        assert_eq!(got, size);
        file.finish().unwrap();
        copy
    }

    #[test]
    fn the_image_is_the_file_hdf5_copies_out_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = FileImage::default();
        // Reused for a larger file, then a smaller one, as the shard stager reuses it.
        for n in [1_000usize, 300_000, 5_000] {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let copy = build(&mut image, &values);
            assert_eq!(image.bytes(), &copy[..], "{n} values");
            let path = dir.path().join(format!("{n}.h5"));
            std::fs::write(&path, image.bytes()).unwrap();
            let file = hdf5::File::open(&path).unwrap();
            assert_eq!(
                file.dataset("x").unwrap().read_raw::<f32>().unwrap(),
                values
            );
        }
    }
}
