"""Files: streamed uploads and downloads over the socket, kept in S3 or on local disk, owned by records.

    types.py      what a file is, judged by its first bytes (never by the client's word)
    signing.py    signed, expiring URLs for the local backend's `GET /files/...`
    service.py    the process-wide part: storage, the unclaimed-objects table, its sweeper, storing into records
    transfers.py  one connection's streams: uploads with a window and acks, downloads with backpressure
    http.py       `GET /files/...` for browsers (local backend), with Range
The storage backends themselves live in hapta/store/files/.
"""
