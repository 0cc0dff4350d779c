//! HDF5 files built in memory, in a [`FileImage`] that the caller keeps and reuses.
//!
//! HDF5's core driver holds a file in memory it allocates itself, and `H5Fget_file_image`
//! copies it out. For a shard of tens of megabytes (above glibc's mmap threshold) both were
//! fresh mappings, faulted in page by page for every shard, with a copy between them. Through
//! HDF5's file image callbacks the driver grows the caller's image instead, so the memory of
//! one shard serves the next and the finished file is already where it is written from. The
//! driver zeroes every region it grows the file into, so bytes left in the image by an
//! earlier file never reach a later one.

use super::direct::FileImage;
use crate::error::{Error, Result};
use hdf5::file::FileCloseDegree;
use hdf5_sys::h5::herr_t;
use hdf5_sys::h5fd::{H5FD_file_image_callbacks_t, H5FD_file_image_op_t};
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};

/// An open HDF5 file whose bytes are `slot`'s image; [`MemoryFile::finish`] closes it and
/// cuts the image to the file's length.
pub struct MemoryFile<'a> {
    /// `None` once closed.
    file: Option<hdf5::File>,
    name: PathBuf,
    /// Where the image is returned once HDF5 lets go of it.
    slot: &'a mut FileImage,
    /// The image while the file is open, moved out of `slot` onto the heap: HDF5's callbacks
    /// hold this pointer, so it must stay valid for as long as HDF5 might use it.
    image: *mut FileImage,
}

impl std::ops::Deref for MemoryFile<'_> {
    type Target = hdf5::File;
    fn deref(&self) -> &hdf5::File {
        self.file
            .as_ref()
            .expect("a MemoryFile is open until finished or dropped")
    }
}

impl<'a> MemoryFile<'a> {
    /// Creates an empty file in `slot`'s image, with room for `expected` bytes; `name` only
    /// names it (nothing is written there).
    pub fn create(name: &Path, slot: &'a mut FileImage, expected: usize) -> Result<MemoryFile<'a>> {
        let h5err = |e| Error::hdf5(name, e);
        let refused = |what: &str| Error::Other(format!("{}: HDF5 refused {what}", name.display()));
        // A new file starts empty; its room is reserved before the driver asks for it.
        slot.resize(0)
            .and_then(|()| slot.reserve(expected))
            .ok_or_else(|| refused("an image of that size"))?;
        // Closing the file then closes every object in it, so the driver lets go of the image
        // when `close` says, not when some forgotten handle goes.
        let fapl = hdf5::plist::FileAccess::build()
            .core_filebacked(false)
            .fclose_degree(FileCloseDegree::Strong)
            .finish()
            .map_err(h5err)?;
        let image = Box::into_raw(Box::new(std::mem::take(slot)));
        // From here on, `file` returns the image to the slot, or leaves it to HDF5.
        let mut file = MemoryFile {
            file: None,
            name: name.to_path_buf(),
            slot,
            image,
        };
        let mut callbacks = H5FD_file_image_callbacks_t {
            image_realloc: Some(grow_image),
            image_free: Some(keep),
            udata_copy: Some(share),
            udata_free: Some(unshare),
            udata: image.cast(),
            ..Default::default()
        };
        let c_name = CString::new(name.to_string_lossy().as_bytes())
            .map_err(|_| Error::Other(format!("{}: a NUL in the name", name.display())))?;
        // SAFETY: `fapl` is a valid file access list, and HDF5 copies `callbacks`. Their
        // `udata` is `image`, which is freed only once HDF5 holds no pointer to it (`close`).
        // The library lock serialises the calls.
        let h5 = hdf5::sync::sync(|| unsafe {
            if hdf5_sys::h5p::H5Pset_file_image_callbacks(fapl.id(), &mut callbacks) < 0 {
                return Err(refused("the file image callbacks"));
            }
            let id = hdf5_sys::h5f::H5Fcreate(
                c_name.as_ptr(),
                hdf5_sys::h5f::H5F_ACC_TRUNC,
                hdf5_sys::h5p::H5P_DEFAULT,
                fapl.id(),
            );
            hdf5::from_id::<hdf5::File>(id).map_err(h5err)
        })?;
        file.file = Some(h5);
        Ok(file)
    }

    /// Flushes and closes the file, and cuts the image to the file's length.
    pub fn finish(mut self) -> Result<()> {
        let size = {
            let file = &*self;
            file.flush().map_err(|e| Error::hdf5(&self.name, e))?;
            // SAFETY: the file is open; a null buffer asks only for the file's size.
            hdf5::sync::sync(|| unsafe {
                hdf5_sys::h5f::H5Fget_file_image(file.id(), std::ptr::null_mut(), 0)
            })
        };
        self.close()?;
        let image = &mut *self.slot;
        // The driver's memory always covers the file; past it lie bytes nobody zeroed.
        match usize::try_from(size) {
            Ok(size) if size <= image.bytes().len() => image.resize(size),
            _ => None,
        }
        .ok_or_else(|| {
            Error::Other(format!(
                "{}: HDF5 gave a size ({size}) its image does not hold",
                self.name.display()
            ))
        })
    }

    /// Closes the file for good and returns the image to its slot. If the file cannot be
    /// closed (another handle to it is open, or HDF5 refuses), the image is left to HDF5,
    /// never freed, and the slot keeps an empty one.
    fn close(&mut self) -> Result<()> {
        if self.image.is_null() {
            return Ok(());
        }
        let closed = match self.file.take() {
            Some(file) => file.refcount() == 1 && file.close().is_ok(),
            None => true, // never opened
        };
        let image = std::mem::replace(&mut self.image, std::ptr::null_mut());
        if !closed {
            return Err(Error::Other(format!(
                "{}: the in-memory file could not be closed",
                self.name.display()
            )));
        }
        // SAFETY: `image` came from `Box::into_raw` in `create`, and with the file closed
        // HDF5 holds no pointer to it.
        *self.slot = *unsafe { Box::from_raw(image) };
        Ok(())
    }
}

impl Drop for MemoryFile<'_> {
    /// An unfinished file (an error on the way) is closed, so that HDF5 lets go of the image.
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The driver's realloc: the image grows (or shrinks) to `size` bytes, keeping its contents;
/// null, HDF5's allocation error, for a size no buffer can hold.
extern "C" fn grow_image(
    _mem: *mut c_void,
    size: usize,
    _op: H5FD_file_image_op_t,
    udata: *mut c_void,
) -> *mut c_void {
    // SAFETY: `udata` is the image `MemoryFile::create` borrowed, alive while HDF5 calls this.
    let image = unsafe { &mut *udata.cast::<FileImage>() };
    match image.resize(size) {
        Some(()) => image.bytes_mut().as_mut_ptr().cast(),
        None => std::ptr::null_mut(),
    }
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
        {
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
        }
        file.flush().unwrap();
        // SAFETY: the file is open; the first call only sizes it, the second writes at most
        // `copy.len()` bytes into `copy`. The library lock serialises both.
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

    #[test]
    fn a_file_still_held_elsewhere_is_refused_and_its_image_left_to_hdf5() {
        let mut image = FileImage::default();
        let file = MemoryFile::create(Path::new("held.h5"), &mut image, 0).unwrap();
        let held = (*file).clone();
        let err = file.finish().unwrap_err().to_string();
        assert!(err.contains("could not be closed"), "{err}");
        // The clone still works on memory that was not freed under it.
        held.new_attr::<u8>().create("a").unwrap();
        drop(held);
        assert!(image.bytes().is_empty());
    }
}
