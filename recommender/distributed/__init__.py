"""Build a large archive on Ray: reading and embedding run on Ray Data, the result is the normal index.

``recommender build SOURCE ... --ray [ADDRESS]`` (or ``build_index(..., ray_address=...)``) runs like this:

1. the driver (this process) splits every SOURCE into shards: byte ranges of ``shard_size`` lines of a JSONL
   file, ``shard_size`` pages of an HTML folder, any other file whole (:mod:`.shards`);
2. Ray Data maps the shards over a pool of actors (``map_batches`` with a callable class, so each worker loads
   the model once, through :func:`recommender.embedding.load_embedder`: every backend works). An actor reads
   and validates its shard with the same readers as a local build and embeds only the texts whose content
   hash is not among the vectors the catalog already holds (a sorted array, put in the object store once)
   (:mod:`.worker`);
3. the driver consumes the results as a stream, in source order: vectors are committed to the catalog's
   ``vectors`` table a shard at a time as they arrive -- a killed build keeps them, so a re-run embeds only
   what is missing or changed -- and the articles go through the same staging, commit, FAISS build (which
   reads the vectors back from the catalog in batches) and manifest switch as a local build
   (:func:`recommender.writer.apply_batch`; :mod:`.driver`).

The driver holds the shard list, the known-hash array (8 bytes a vector) and one shard's results at a time;
duplicate ids are found in a disk-backed temp table, so its memory stays flat whatever the archive's size.
Ray is an optional extra (``pip install 'recommender[ray]'``), imported only when a build runs on it
(:mod:`.session`). See docs/scaling.md.
"""

from recommender.distributed.driver import RayJob, ray_job
from recommender.distributed.session import (
    INSTALL_HINT,
    PLUGINS_ENV,
    RayOptions,
    import_ray,
    looks_like_address,
    normalise_address,
)
from recommender.distributed.shards import Shard, plan_shards

__all__ = [
    "INSTALL_HINT",
    "PLUGINS_ENV",
    "RayOptions",
    "Shard",
    "import_ray",
    "looks_like_address",
    "normalise_address",
    "plan_shards",
    "RayJob",
    "ray_job",
]
