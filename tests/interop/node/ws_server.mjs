// A Node `ws` echo and broadcast server with permessage-deflate on, the peer the
// compression rows of benches/compare.sh measure wavecore against (issue 14):
//
//   node tests/interop/node/ws_server.mjs [ADDR]     # default 127.0.0.1:9001
//
// Path /broadcast: every message received is sent to every /broadcast connection
// (ws compresses it once per connection); any other path echoes. perMessageDeflate
// uses ws' defaults (zlib's default level, context takeover where the client allows
// it) except the threshold, lowered from 1 KiB to 64 bytes like wavecore's
// min_message_size. Prints `listening on ADDR` once bound; runs until killed.
import { WebSocketServer } from 'ws';

const [host, port] = (process.argv[2] ?? '127.0.0.1:9001').split(':');
const wss = new WebSocketServer({
  host,
  port: Number(port),
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: { threshold: 64 },
});
const room = new Set();
wss.on('connection', (ws, request) => {
  const broadcast = request.url === '/broadcast';
  if (broadcast) room.add(ws);
  ws.on('message', (data, isBinary) => {
    if (!broadcast) return ws.send(data, { binary: isBinary });
    for (const peer of room) peer.send(data, { binary: isBinary });
  });
  ws.on('close', () => room.delete(ws));
});
wss.on('listening', () => console.log(`listening on ${host}:${port}`));
