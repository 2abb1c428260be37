"""A TCP proxy that delays: what tests and `make perf` use for a slow link."""

import asyncio
import threading


class DelayProxy:
    """A TCP proxy on loopback that holds every chunk `delay` seconds each way: a link with a
    round-trip time of 2 x delay, without root or netem."""

    def __init__(self, port, delay):
        self.target, self.delay = port, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(5)

    def _run(self, ready):
        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    self.loop.call_later(self.delay, writer.write, data)
                await asyncio.sleep(self.delay)
            finally:
                self.loop.call_later(self.delay, writer.close)

        async def handle(reader, writer):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Event().wait()

        self.loop.run_until_complete(main())
