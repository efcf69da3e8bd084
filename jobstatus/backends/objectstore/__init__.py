"""``s3://bucket/prefix``, ``gs://…``, ``az://…``, ``fsspec+PROTO://…``: one object per job.

A record lives in ``<prefix>/jobs/<job_id>.json`` and holds exactly the bytes the filesystem
backend writes (``record.to_json()``), so a data folder synced into a bucket is read as is, and
the other way round.

- ``updated_at`` travels with the object: S3 keeps it in the object's metadata
  (``x-amz-meta-updated-at``), written by the same request as the body and read by the same
  GET, so ``restore`` gives back exactly the stamp it was given. An object without it (synced
  from a folder) is stamped with its ``LastModified``.
- On S3 the store sends its own requests with the filesystem's client, past fsspec's caches:
  ``get`` is one GET; a ``put`` reads the object (GET), checks ``expect_version`` and the
  final-state rule against it, and writes with one PUT conditional on the ETag read
  (``If-Match``, or ``If-None-Match: *`` where there was none), read and checked again when
  another writer got there first. That makes the checks atomic across processes. A record's
  ``version`` is its object's ETag.
- ``list`` and ``purge`` decide from the listing where they can. A ``put`` stamps the writer's
  clock, which is within :data:`DEFAULT_CLOCK_SKEW` of the object's ``LastModified``; a
  ``restore`` writes a one-part multipart upload, whose ETag ends in ``-1``, so that the
  listing shows which objects carry a stamp unrelated to their ``LastModified``. Only objects
  whose stamp the listing cannot place on one side of a bound are asked for it (HEAD); objects
  outside the window are never downloaded. ``expires_at`` is kept in the metadata too
  (:data:`EXPIRY_METADATA_KEY`), so purging expired records asks (HEAD) rather than downloads.
- Other fsspec filesystems take the generic path: the version is a hash of the bytes, the stamp
  is kept as custom metadata where the filesystem has ``setxattrs``, as the modification time on
  the local filesystem, and the checks of ``put`` are a read-check-write under a lock of this
  process, since fsspec offers no conditional write: atomic among this process's threads only.
- An expired record reads as absent (``get``, ``list``) and is replaced by a ``put`` as if there
  were none; reads never create a bucket or a folder; :meth:`ObjectStore.exists` tells whether
  the bucket (or the root folder) is there.

The modules: ``_url`` (store URLs into a filesystem), ``_objects`` (what the store asks of a
folder of objects), ``_s3`` and ``_fsspec`` (that, on S3 and on any other filesystem),
``_store`` (the store protocol on top).
"""

from __future__ import annotations

from typing import Any

from jobstatus.backends.objectstore import _objects, _store, _url
from jobstatus.backends.objectstore._store import ObjectStore
from jobstatus.backends.objectstore._url import open_filesystem, parse_store_url

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "EXPIRY_METADATA_KEY",
    "NUMERIC_OPTIONS",
    "STAMP_METADATA_KEY",
    "ObjectStore",
    "open_object_store",
    "parse_store_url",
]


#: The metadata key holding ``updated_at`` (``x-amz-meta-updated-at`` on S3).
STAMP_METADATA_KEY = _objects.STAMP_METADATA_KEY

#: The metadata key holding the record's ``expires_at`` in epoch seconds, when it has one
#: (``x-amz-meta-expires-at`` on S3), so that expiry is known without reading the document.
EXPIRY_METADATA_KEY = _objects.EXPIRY_METADATA_KEY

#: How far apart a writer's clock and the object store's ``LastModified`` may be, in seconds,
#: request time included. Listing and purging read the stamp of objects this close to a bound.
DEFAULT_CLOCK_SKEW = _store.DEFAULT_CLOCK_SKEW

#: Query parameters turned into numbers (by the last part of a dotted name); every other
#: value stays a string, but ``true`` and ``false`` become booleans.
NUMERIC_OPTIONS = _url.NUMERIC_OPTIONS


def open_object_store(url: str, **options: Any) -> ObjectStore:
    """Factory for ``s3://``, ``s3a://``, ``gs://``, ``gcs://``, ``az://``, ``abfs://``,
    ``abfss://`` and ``fsspec+PROTO://``; keyword options are fsspec storage options and win
    over the query string, but for ``timeout`` on S3: the store's (see :class:`ObjectStore`),
    and botocore's ``connect_timeout`` and ``read_timeout`` unless ``config_kwargs`` gives
    them."""
    fs, root, timeout = open_filesystem(url, options)
    return ObjectStore(fs, root, close_fs=True, timeout=timeout)
