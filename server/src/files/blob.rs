//! Where the bytes of uploaded files live, behind one small interface: a directory for one
//! node ([`FsBlobs`]), PostgreSQL for a cluster ([`PgBlobs`]: every node reads the same rows).
//!
//! Durability rule: `put_file` returns only when the bytes are durable under their final key,
//! and the upload's row is written after it. A crash before that leaves at most a file no row
//! names (a spool file, swept at start), never a row naming a missing or partial file.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A file's bytes, in chunks.
pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Bytes read from a stored file per chunk.
const READ_CHUNK: usize = 64 * 1024;

/// The blob interface.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores the finished spool file `src` under `key`, durably (the file is consumed).
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<()>;
    /// Stores small bytes (a thumbnail) under `key`, durably.
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()>;
    /// `len` bytes of `key` from `start` (the caller knows the size from the upload's row).
    async fn open(&self, key: &str, start: u64, len: u64) -> io::Result<BlobStream>;
    /// Deletes `key` (missing is fine).
    async fn delete(&self, key: &str) -> io::Result<()>;
    /// What it is, for the log.
    fn describe(&self) -> String;
}

/// A key is an upload id (`f_` + base32) or that plus `.t` (its thumbnail): never a path.
fn check_key(key: &str) -> io::Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && !key.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "bad blob key"))
    }
}

/// Creates the spool directory `dir`, deleting the files a crash left in it (uploads cut off
/// before their bytes were stored: no row names them). Whatever the store, at start.
pub fn sweep_spool(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        for entry in std::fs::read_dir(dir)? {
            let _ = std::fs::remove_file(entry?.path());
        }
    }
    std::fs::create_dir_all(dir)
}

/// Files under a directory: `<root>/objects/<key>`; spool files in `<root>/tmp` (the same
/// filesystem, so the final rename is atomic).
pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    /// Creates the directories; deletes spool files left by a crash.
    pub fn open(root: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("objects"))?;
        sweep_spool(&root.join("tmp"))?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join("objects").join(key))
    }

    async fn sync_dir(&self) -> io::Result<()> {
        let dir = self.root.join("objects");
        tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(io::Error::other)?
    }
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        let dst = self.path(key)?;
        tokio::fs::File::open(src).await?.sync_all().await?;
        match tokio::fs::rename(src, &dst).await {
            Ok(()) => {}
            // Another filesystem (a spool dir elsewhere): copy, then sync the copy.
            Err(e) if e.raw_os_error() == Some(18) => {
                let tmp = dst.with_extension("part");
                tokio::fs::copy(src, &tmp).await?;
                tokio::fs::File::open(&tmp).await?.sync_all().await?;
                tokio::fs::rename(&tmp, &dst).await?;
                let _ = tokio::fs::remove_file(src).await;
            }
            Err(e) => return Err(e),
        }
        self.sync_dir().await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        let dst = self.path(key)?;
        let tmp = self.root.join("tmp").join(format!("{key}.part"));
        {
            use tokio::io::AsyncWriteExt;
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(&bytes).await?;
            f.sync_all().await?;
        }
        tokio::fs::rename(&tmp, &dst).await?;
        self.sync_dir().await
    }

    async fn open(&self, key: &str, start: u64, len: u64) -> io::Result<BlobStream> {
        let mut f = tokio::fs::File::open(self.path(key)?).await?;
        f.seek(io::SeekFrom::Start(start)).await?;
        let reader = f.take(len);
        Ok(Box::pin(futures_util::stream::unfold(
            Some(reader),
            |reader| async move {
                let mut reader = reader?;
                let mut buf = BytesMut::with_capacity(READ_CHUNK);
                match reader.read_buf(&mut buf).await {
                    Ok(0) => None,
                    Ok(_) => Some((Ok(buf.freeze()), Some(reader))),
                    Err(e) => Some((Err(e), None)),
                }
            },
        )))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

/// Bytes per PostgreSQL row.
const PG_CHUNK: usize = 256 * 1024;
/// Rows fetched per read while streaming.
const PG_ROWS_PER_READ: i64 = 4;

/// Files as rows of 256 KiB `bytea` chunks in PostgreSQL: every node of a cluster reads what
/// any node wrote, with no other service to run.
pub struct PgBlobs {
    pool: deadpool_postgres::Pool,
}

fn pg_io(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("file store (PostgreSQL): {e}"))
}

impl PgBlobs {
    /// Connects (a small pool of its own) and creates the table if needed.
    pub async fn connect(url: &str) -> io::Result<Self> {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
        let config: tokio_postgres::Config = url.parse().map_err(pg_io)?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pg_io)?;
        let client = pool.get().await.map_err(pg_io)?;
        // Two nodes starting together may both try: the second one's error is harmless.
        if let Err(e) = client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS file_chunks (key TEXT NOT NULL, n INTEGER NOT NULL, \
                 data BYTEA NOT NULL, PRIMARY KEY (key, n))",
            )
            .await
        {
            let exists = client
                .query_opt("SELECT to_regclass('file_chunks')::text", &[])
                .await
                .map_err(pg_io)?
                .and_then(|r| r.get::<_, Option<String>>(0));
            if exists.is_none() {
                return Err(pg_io(e));
            }
        }
        drop(client);
        Ok(Self { pool })
    }
}

#[async_trait]
impl BlobStore for PgBlobs {
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        check_key(key)?;
        let mut f = tokio::fs::File::open(src).await?;
        let mut client = self.pool.get().await.map_err(pg_io)?;
        let tx = client.transaction().await.map_err(pg_io)?;
        tx.execute("DELETE FROM file_chunks WHERE key = $1", &[&key])
            .await
            .map_err(pg_io)?;
        let insert = tx
            .prepare("INSERT INTO file_chunks (key, n, data) VALUES ($1, $2, $3)")
            .await
            .map_err(pg_io)?;
        let mut n: i32 = 0;
        loop {
            let mut buf = vec![0u8; PG_CHUNK];
            let mut filled = 0;
            while filled < PG_CHUNK {
                let read = f.read(&mut buf[filled..]).await?;
                if read == 0 {
                    break;
                }
                filled += read;
            }
            if filled == 0 && n > 0 {
                break;
            }
            buf.truncate(filled);
            tx.execute(&insert, &[&key, &n, &buf])
                .await
                .map_err(pg_io)?;
            n += 1;
            if filled < PG_CHUNK {
                break;
            }
        }
        tx.commit().await.map_err(pg_io)?;
        let _ = tokio::fs::remove_file(src).await;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        check_key(key)?;
        let mut client = self.pool.get().await.map_err(pg_io)?;
        let tx = client.transaction().await.map_err(pg_io)?;
        tx.execute("DELETE FROM file_chunks WHERE key = $1", &[&key])
            .await
            .map_err(pg_io)?;
        for (n, chunk) in bytes.chunks(PG_CHUNK).enumerate() {
            tx.execute(
                "INSERT INTO file_chunks (key, n, data) VALUES ($1, $2, $3)",
                &[&key, &(n as i32), &chunk],
            )
            .await
            .map_err(pg_io)?;
        }
        tx.commit().await.map_err(pg_io)
    }

    async fn open(&self, key: &str, start: u64, len: u64) -> io::Result<BlobStream> {
        check_key(key)?;
        struct Cursor {
            pool: deadpool_postgres::Pool,
            key: String,
            next: i32,
            skip: usize,
            left: u64,
        }
        let cursor = Cursor {
            pool: self.pool.clone(),
            key: key.to_owned(),
            next: (start / PG_CHUNK as u64) as i32,
            skip: (start % PG_CHUNK as u64) as usize,
            left: len,
        };
        // Missing files fail here, not mid-stream.
        let client = self.pool.get().await.map_err(pg_io)?;
        let found = client
            .query_opt(
                "SELECT 1 FROM file_chunks WHERE key = $1 AND n = 0",
                &[&cursor.key],
            )
            .await
            .map_err(pg_io)?;
        drop(client);
        if found.is_none() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        Ok(Box::pin(futures_util::stream::unfold(
            Some(cursor),
            |cursor| async move {
                let mut c = cursor?;
                if c.left == 0 {
                    return None;
                }
                let read = async {
                    let client = c.pool.get().await.map_err(pg_io)?;
                    client
                        .query(
                            "SELECT n, data FROM file_chunks WHERE key = $1 AND n >= $2 ORDER BY n LIMIT $3",
                            &[&c.key, &c.next, &PG_ROWS_PER_READ],
                        )
                        .await
                        .map_err(pg_io)
                };
                match read.await {
                    Ok(rows) if rows.is_empty() => None,
                    Ok(rows) => {
                        let mut out = BytesMut::new();
                        for row in rows {
                            let n: i32 = row.get(0);
                            let data: &[u8] = row.get(1);
                            let data = &data[c.skip.min(data.len())..];
                            c.skip = 0;
                            let take = (c.left as usize).min(data.len());
                            out.extend_from_slice(&data[..take]);
                            c.left -= take as u64;
                            c.next = n + 1;
                            if c.left == 0 {
                                break;
                            }
                        }
                        Some((Ok(out.freeze()), Some(c)))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            },
        )))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        check_key(key)?;
        let client = self.pool.get().await.map_err(pg_io)?;
        client
            .execute("DELETE FROM file_chunks WHERE key = $1", &[&key])
            .await
            .map_err(pg_io)?;
        Ok(())
    }

    fn describe(&self) -> String {
        "PostgreSQL (table file_chunks)".into()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn read_all(s: BlobStream) -> Vec<u8> {
        let parts: Vec<_> = s.collect().await;
        parts
            .into_iter()
            .flat_map(|p| p.unwrap().to_vec())
            .collect()
    }

    async fn round_trip(store: &dyn BlobStore, spool: &Path) {
        let data: Vec<u8> = (0..(PG_CHUNK * 2 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let src = spool.join("upload.part");
        std::fs::write(&src, &data).unwrap();
        store.put_file("f_test1", &src).await.unwrap();
        let all = read_all(store.open("f_test1", 0, data.len() as u64).await.unwrap()).await;
        assert_eq!(all, data);
        // A range across a chunk boundary.
        let start = PG_CHUNK as u64 - 10;
        let part = read_all(store.open("f_test1", start, 200_000).await.unwrap()).await;
        assert_eq!(part, &data[start as usize..start as usize + 200_000]);
        store
            .put_bytes("f_test1.t", Bytes::from_static(b"thumb"))
            .await
            .unwrap();
        assert_eq!(
            read_all(store.open("f_test1.t", 0, 5).await.unwrap()).await,
            b"thumb"
        );
        store.delete("f_test1").await.unwrap();
        store.delete("f_test1").await.unwrap();
        assert!(store.open("f_test1", 0, 1).await.is_err());
        assert!(store.open("../etc/passwd", 0, 1).await.is_err());
    }

    #[tokio::test]
    async fn a_directory_stores_reads_ranges_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobs::open(dir.path().to_path_buf()).unwrap();
        round_trip(&store, &dir.path().join("tmp")).await;
    }

    #[tokio::test]
    async fn postgresql_stores_reads_ranges_and_deletes() {
        let Ok(url) = std::env::var("WSMSCHAT_TEST_POSTGRES") else {
            eprintln!("skipped: WSMSCHAT_TEST_POSTGRES is not set");
            return;
        };
        let store = PgBlobs::connect(&format!("{url}/test")).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        round_trip(&store, dir.path()).await;
    }
}
