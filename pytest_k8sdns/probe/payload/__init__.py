"""The DNS probe that runs inside probe pods: `python3 -I -S probe.pyz <command> '<json args>'`.

Standalone on purpose: stdlib plus the dnspython bundled beside it in the zipapp, Python 3.8+,
glibc or a static musl CPython without _ssl, _hashlib, _ctypes, _bz2, _lzma or _sqlite3. Its
modules import each other and ../protocol.py relatively, because in the zipapp they live under
another package name (build.py). One module per command; __main__.py dispatches.
"""
