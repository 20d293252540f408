"""pgolf.pipeline.data: token shards, an offline synthetic dataset, and the official data download.

`shards` reads and writes the official shard format; `synth` builds a small dataset
from text every Python installation carries; `fetch` downloads the published FineWeb
shards; `commands` exposes both as the `pgolf data` click group.
"""

from ...compliance.shards import ShardError, read_header, read_shard, shard_name, shard_paths, write_shard

__all__ = ["ShardError", "read_header", "read_shard", "shard_name", "shard_paths", "write_shard"]
