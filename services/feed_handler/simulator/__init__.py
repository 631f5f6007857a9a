"""A websocket venue simulator speaking the Binance spot and Coinbase Exchange protocols, so the feed
handler's websocket adapters run here without internet: in tests, benchmarks and `make run` set-ups.

    python -m feed_handler.simulator --venue binance --port 9001 --source synthetic --rate 500
    python -m feed_handler.simulator --venue binance --source replay \\
        --file ../shared/data/crypto_ws/BINANCE-b38f7c.0 --speed 10 --wait-for-client

Data comes from the synthetic market (deterministic: the same --seed and --anchor give the same events
at the same wall-clock times in two instances, a failover pair) or from a recorded session replayed
frame for frame. Besides the websocket it answers plain HTTP GETs on the same port:

    /api/v3/depth?symbol=X&limit=N     Binance REST depth snapshot (consistent with the diffs sent)
    /_sim/stats                        connections, frames, pings/pongs, snapshots served, faults
    /_sim/fault?kind=K[&symbol=S]      inject: gap, bad_json, unknown_type, missing_field, negative_size,
                                       crossed, close (drop every connection), silence&seconds=N
"""
