//! The transport from V8's serializer to the capture thread: a path that
//! `v8.writeHeapSnapshot(path)` can open for writing, whose bytes arrive at a reader the
//! capture thread owns.
//!
//! - Linux: an anonymous pipe; V8 opens its write end as `/proc/self/fd/<n>` (a fork child
//!   resolves the same path to the same inherited pipe). Nothing is created on disk.
//! - Other Unix (macOS): a FIFO in a fresh 0700 directory under the temp dir, removed when
//!   the transport is dropped. Also built and unit-tested on Linux.
//! - Windows: a named pipe `\\.\pipe\leakguard-<pid>-<n>` (one instance, inbound, local
//!   clients only) that V8 opens with `CreateFileW`; the reader connects on its first
//!   read. Compiled (`cargo check --target x86_64-pc-windows-msvc`), not yet run.
//!
//! The transport holds a write end of its own until [`Transport::close_write_end`], so the
//! reader sees EOF only after every writer (V8, a fork child) has closed — never before
//! V8 has opened the path. Every descriptor is close-on-exec, so a `child_process` spawned
//! meanwhile inherits none.

use std::fs::File;
use std::path::PathBuf;

use crate::error::{Code, Error, Result};

/// What the capture thread reads from: the pipe's read end (a named-pipe server end that
/// connects on first read, on Windows).
#[cfg(unix)]
pub type Reader = File;
#[cfg(windows)]
pub type Reader = win::PipeReader;

pub struct Transport {
    path: String,
    reader: Option<Reader>,
    writer: Option<File>,
    cleanup: Option<PathBuf>,
    /// Windows: the pipe's name, to unblock a reader still waiting for V8 to connect.
    #[cfg(windows)]
    win_name: Option<Vec<u16>>,
}

/// Which transport to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Linux: `/proc/self/fd/<n>` of an anonymous pipe.
    ProcFd,
    /// A named FIFO (macOS, other Unix).
    Fifo,
    /// A Windows named pipe.
    NamedPipe,
}

impl Kind {
    pub fn native() -> Self {
        if cfg!(target_os = "linux") {
            Kind::ProcFd
        } else if cfg!(windows) {
            Kind::NamedPipe
        } else {
            Kind::Fifo
        }
    }
}

impl Transport {
    pub fn new(kind: Kind) -> Result<Self> {
        match kind {
            #[cfg(target_os = "linux")]
            Kind::ProcFd => proc_fd(),
            #[cfg(unix)]
            Kind::Fifo => fifo(),
            #[cfg(windows)]
            Kind::NamedPipe => win::named_pipe(),
            #[allow(unreachable_patterns)]
            _ => Err(Error::new(
                Code::CapturePipeFailed,
                "heap capture through a pipe is not implemented on this platform",
            )),
        }
    }

    /// The path to hand to `v8.writeHeapSnapshot`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The reader, for the capture thread (once).
    pub fn take_reader(&mut self) -> Option<Reader> {
        self.reader.take()
    }

    /// Drop our own write end: once every other writer closes, the reader sees EOF.
    pub fn close_write_end(&mut self) {
        self.writer = None;
        #[cfg(windows)]
        if let Some(name) = self.win_name.take() {
            win::poke(&name);
        }
    }

    /// The raw write-end descriptor (kept open across `fork`), if still held.
    #[cfg(unix)]
    pub fn write_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.writer.as_ref().map(|f| f.as_raw_fd())
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.writer = None;
        if let Some(dir) = self.cleanup.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(target_os = "linux")]
fn proc_fd() -> Result<Transport> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::io(
            Code::CapturePipeFailed,
            "creating the snapshot pipe",
            &e,
        ));
    }
    // A bigger pipe means fewer wake-ups of the capture thread and fewer blocked writes
    // in V8; 1 MiB is the default /proc/sys/fs/pipe-max-size. Best effort.
    // SAFETY: fcntl on a descriptor we just created.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    // SAFETY: the descriptors are fresh and owned by nothing else.
    let (reader, writer) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    Ok(Transport {
        path: format!("/proc/self/fd/{}", fds[1]),
        reader: Some(reader),
        writer: Some(writer),
        cleanup: None,
    })
}

#[cfg(unix)]
fn fifo() -> Result<Transport> {
    use std::ffi::CString;
    use std::fs::OpenOptions;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;

    let fail = |what: &str, e: std::io::Error| Error::io(Code::CapturePipeFailed, what, &e);
    let base = std::env::temp_dir();
    let mut dir = None;
    for i in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let cand = base.join(format!("leakguard-{}-{nanos:x}-{i}", std::process::id()));
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        match b.create(&cand) {
            Ok(()) => {
                dir = Some(cand);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail("creating the FIFO directory", e)),
        }
    }
    let dir =
        dir.ok_or_else(|| Error::new(Code::CapturePipeFailed, "no free FIFO directory name"))?;
    let path = dir.join("snapshot.fifo");
    let c = CString::new(path.as_os_str().as_bytes()).expect("temp paths hold no NUL");
    // SAFETY: mkfifo reads the NUL-terminated path we own.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_dir_all(&dir);
        return Err(fail("creating the snapshot FIFO", e));
    }
    let opened = (|| {
        // Open the read end without blocking (no writer yet), then our own write end.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| fail("opening the FIFO for reading", e))?;
        let writer = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| fail("opening the FIFO for writing", e))?;
        use std::os::fd::AsRawFd;
        let fd = reader.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own: clear O_NONBLOCK so reads wait for data.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
        Ok((reader, writer))
    })();
    match opened {
        Ok((reader, writer)) => Ok(Transport {
            path: path.to_string_lossy().into_owned(),
            reader: Some(reader),
            writer: Some(writer),
            cleanup: Some(dir),
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

#[cfg(windows)]
mod win {
    use std::fs::File;
    use std::io::{self, Read};
    use std::os::windows::io::{AsRawHandle, FromRawHandle};
    use std::sync::atomic::{AtomicU64, Ordering};

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_PIPE_CONNECTED, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, OPEN_EXISTING, PIPE_ACCESS_INBOUND,
    };
    use windows_sys::Win32::System::Pipes::{
        ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_TYPE_BYTE, PIPE_WAIT,
    };

    use super::Transport;
    use crate::error::{Code, Error, Result};

    static N: AtomicU64 = AtomicU64::new(0);

    /// The server end; connects (waits for V8's CreateFileW) on the first read. A client
    /// that closes makes ReadFile fail with ERROR_BROKEN_PIPE, which std reads as EOF.
    pub struct PipeReader {
        file: File,
        connected: bool,
    }

    impl Read for PipeReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.connected {
                // SAFETY: a valid pipe handle we own; synchronous (no OVERLAPPED).
                let ok = unsafe {
                    ConnectNamedPipe(self.file.as_raw_handle() as HANDLE, std::ptr::null_mut())
                };
                if ok == 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(ERROR_PIPE_CONNECTED as i32) {
                        return Err(e);
                    }
                }
                self.connected = true;
            }
            self.file.read(buf)
        }
    }

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    pub fn named_pipe() -> Result<Transport> {
        let path = format!(
            r"\\.\pipe\leakguard-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let name = wide(&path);
        // SAFETY: a NUL-terminated UTF-16 name; default security (the creating user).
        let h = unsafe {
            CreateNamedPipeW(
                name.as_ptr(),
                PIPE_ACCESS_INBOUND | FILE_FLAG_FIRST_PIPE_INSTANCE,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                0,
                1 << 20,
                0,
                std::ptr::null(),
            )
        };
        if h == INVALID_HANDLE_VALUE {
            let e = io::Error::last_os_error();
            return Err(Error::io(
                Code::CapturePipeFailed,
                "creating the snapshot named pipe",
                &e,
            ));
        }
        // SAFETY: a fresh handle owned by nothing else.
        let file = unsafe { File::from_raw_handle(h as _) };
        Ok(Transport {
            path,
            reader: Some(PipeReader {
                file,
                connected: false,
            }),
            writer: None,
            cleanup: None,
            win_name: Some(name),
        })
    }

    /// Connect and close at once: a reader still waiting for a client sees EOF. If V8
    /// already connected, the single instance is busy and this fails harmlessly.
    pub fn poke(name: &[u16]) {
        // SAFETY: a NUL-terminated name; the handle, if any, is closed at once.
        unsafe {
            let h = CreateFileW(
                name.as_ptr(),
                GENERIC_WRITE,
                0,
                std::ptr::null(),
                OPEN_EXISTING,
                0,
                std::ptr::null_mut(),
            );
            if h != INVALID_HANDLE_VALUE {
                CloseHandle(h);
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn round_trip(kind: Kind) {
        let mut t = Transport::new(kind).unwrap();
        let mut r = t.take_reader().unwrap();
        let path = t.path().to_string();
        let h = std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        });
        // Like V8: open the path, write, close; only then drop our own write end.
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        w.write_all(&vec![7u8; 300_000]).unwrap();
        drop(w);
        t.close_write_end();
        assert_eq!(h.join().unwrap(), vec![7u8; 300_000]);
        let cleanup = t.cleanup.clone();
        drop(t);
        if let Some(d) = cleanup {
            assert!(!d.exists(), "the FIFO directory is removed");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_fd_pipe_round_trips() {
        round_trip(Kind::ProcFd);
    }

    #[test]
    fn fifo_round_trips() {
        round_trip(Kind::Fifo);
    }
}
