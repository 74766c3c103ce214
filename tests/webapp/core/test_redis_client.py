"""The site's Redis clients parse replies with hiredis, the C parser (requirements: redis[hiredis]).

Every delta a page receives is an XREAD reply parsed in the web server, and every flush of the
worker an XADD pipeline: redis-py's pure-Python parser takes about a quarter more CPU per XREAD
(bench/bench_redis_parser.py; docs/inference-worker.md, "The web tier per request"). Without the
package installed redis-py falls back silently, so the test names the parser the clients use.
"""

from redis._parsers import _AsyncHiredisParser, _HiredisParser

from webapp.core.redis_client import async_redis_client, redis_client


def test_the_synchronous_client_parses_with_hiredis(settings, redis_url):
    settings.REDIS_URL = redis_url
    redis_client.cache_clear()
    try:
        client = redis_client()
        assert client.ping()
        connection = client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _HiredisParser)
        finally:
            client.connection_pool.release(connection)
    finally:
        redis_client.cache_clear()


async def test_the_asyncio_client_parses_with_hiredis(settings, redis_url):
    settings.REDIS_URL = redis_url
    client = async_redis_client()
    assert await client.ping()
    connection = await client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _AsyncHiredisParser)
    finally:
        await client.connection_pool.release(connection)
        await client.aclose()
