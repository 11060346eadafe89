"""The point-cloud file formats, one module each; `pc3d.io.points` chooses one by extension.

| module | extension | read | write |
|---|---|---|---|
| `bin` | `.bin` | raw little-endian float32 records, `num_features` per point | same |
| `npy` | `.npy` | `[N, C>=3]` numeric array, or a 1-D structured array with named fields | `[N, C]` float32 |
| `pcd` | `.pcd` | `DATA ascii`, `binary` and `binary_compressed` (LZF, see `lzf`) | `ascii`, `binary` |
| `ply` | `.ply` | `ascii`, `binary_little_endian`, `binary_big_endian`; the `vertex` element | `ascii`, `binary_little_endian` |

Every reader returns `(array, fields)`: the columns it found (any order, any numeric dtype) and
their names; every writer takes a `float32 [N, C]` array whose columns `names` names and returns
the file's bytes. Ordering columns x, y, z first, the NaN policy and the atomic write are
`pc3d.io.points`' job. `fields` and `text` hold what several formats share.
"""
