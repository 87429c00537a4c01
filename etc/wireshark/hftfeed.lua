-- Wireshark / tshark dissector for the hftfeed wire format, version 1 (docs/PROTOCOL.md).
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ (or run tshark -X lua_script:hftfeed.lua).
-- Datagrams are recognised by content (magic "HF", version 1) on any UDP port, and decoded
-- on the port set in Preferences > Protocols > HFTFEED (default 9002) even when malformed.
-- Every packet and message field is shown by name (filter with hftfeed.seq, hftfeed.msg.type,
-- hftfeed.book.bid.price, ...); prices and quantities are shown as exact decimals
-- (value x 10^exponent, the exponent taken from the instrument's I message when one was seen
-- on the channel, -8 otherwise), with the raw integers in the *_raw fields. A known fixed-size
-- message longer than its defined length is read and its tail skipped (PROTOCOL.md
-- "Compatibility"); a shorter one is flagged malformed.

local hf = Proto("hftfeed", "HFTFEED market data")

local TYPES = { [0x42] = "B book", [0x54] = "T trade", [0x51] = "Q quote",
                [0x53] = "S status", [0x49] = "I instrument", [0x44] = "D instrument details" }
local STATES = { [1] = "live", [2] = "resync", [3] = "disconnected" }
local SIDES = { [0] = "unknown", [1] = "buyer", [2] = "seller" }
local TRADING = { [0] = "not stated", [1] = "open", [2] = "restricted", [3] = "closed" }

local f = {
  magic = ProtoField.string("hftfeed.magic", "Magic"),
  version = ProtoField.uint8("hftfeed.version", "Version"),
  flags = ProtoField.uint8("hftfeed.flags", "Packet flags", base.HEX),
  eos = ProtoField.bool("hftfeed.flags.end_of_session", "End of session", 8, nil, 0x01),
  channel = ProtoField.uint16("hftfeed.channel", "Channel"),
  count = ProtoField.uint16("hftfeed.count", "Message count"),
  session = ProtoField.uint32("hftfeed.session", "Session"),
  reserved = ProtoField.uint32("hftfeed.reserved", "Reserved"),
  seq = ProtoField.uint64("hftfeed.seq", "Sequence number"),
  send_ns = ProtoField.uint64("hftfeed.send_ns", "Send time (ns)"),
  heartbeat = ProtoField.bool("hftfeed.heartbeat", "Heartbeat"),

  length = ProtoField.uint16("hftfeed.msg.length", "Length"),
  mtype = ProtoField.uint8("hftfeed.msg.type", "Type", base.HEX, TYPES),
  venue = ProtoField.uint8("hftfeed.msg.venue", "Venue"),
  instrument = ProtoField.uint16("hftfeed.msg.instrument", "Instrument"),
  mflags = ProtoField.uint16("hftfeed.msg.flags", "Message flags", base.HEX),
  snapshot = ProtoField.bool("hftfeed.book.snapshot", "Snapshot", 16, nil, 0x0001),
  refresh = ProtoField.bool("hftfeed.book.refresh", "Refresh", 16, nil, 0x0002),
  exch_ns = ProtoField.uint64("hftfeed.msg.exch_ns", "Exchange time (ns)"),
  recv_ns = ProtoField.uint64("hftfeed.msg.recv_ns", "Receive time (ns)"),
  update_id = ProtoField.uint64("hftfeed.msg.update_id", "Update id / trade id"),

  bid_n = ProtoField.uint8("hftfeed.book.bid_n", "Bid levels"),
  ask_n = ProtoField.uint8("hftfeed.book.ask_n", "Ask levels"),
  bid_price = ProtoField.string("hftfeed.book.bid.price", "Bid price"),
  bid_qty = ProtoField.string("hftfeed.book.bid.qty", "Bid qty"),
  ask_price = ProtoField.string("hftfeed.book.ask.price", "Ask price"),
  ask_qty = ProtoField.string("hftfeed.book.ask.qty", "Ask qty"),
  level_price_raw = ProtoField.int64("hftfeed.book.price_raw", "Price (raw)"),
  level_qty_raw = ProtoField.int64("hftfeed.book.qty_raw", "Qty (raw)"),

  price = ProtoField.string("hftfeed.trade.price", "Price"),
  qty = ProtoField.string("hftfeed.trade.qty", "Qty"),
  side = ProtoField.uint8("hftfeed.trade.side", "Aggressor side", base.DEC, SIDES),

  q_bid_px = ProtoField.string("hftfeed.quote.bid_px", "Bid price"),
  q_bid_qty = ProtoField.string("hftfeed.quote.bid_qty", "Bid qty"),
  q_ask_px = ProtoField.string("hftfeed.quote.ask_px", "Ask price"),
  q_ask_qty = ProtoField.string("hftfeed.quote.ask_qty", "Ask qty"),

  state = ProtoField.uint8("hftfeed.status.state", "State", base.DEC, STATES),

  symbol = ProtoField.string("hftfeed.instrument.symbol", "Symbol"),
  price_exp = ProtoField.int8("hftfeed.instrument.price_exp", "Price exponent"),
  qty_exp = ProtoField.int8("hftfeed.instrument.qty_exp", "Qty exponent"),

  tick_size = ProtoField.string("hftfeed.details.tick_size", "Tick size"),
  lot_size = ProtoField.string("hftfeed.details.lot_size", "Lot size"),
  min_qty = ProtoField.string("hftfeed.details.min_qty", "Minimum quantity"),
  contract_size = ProtoField.string("hftfeed.details.contract_size", "Contract size"),
  trading = ProtoField.uint8("hftfeed.details.trading", "Trading", base.DEC, TRADING),
}
local list = {}
for _, field in pairs(f) do list[#list + 1] = field end
hf.fields = list

local e_malformed = ProtoExpert.new("hftfeed.malformed", "Breaks PROTOCOL.md",
                                    expert.group.MALFORMED, expert.severity.ERROR)
hf.experts = { e_malformed }

hf.prefs.port = Pref.uint("UDP port", 9002, "Decode this UDP port as hftfeed")

-- exponents learned from I messages: exps[channel * 65536 + instrument] = {price, qty}
local exps = {}

-- value x 10^exp as an exact decimal string (value: an Int64, exp: a small integer)
local function decimal(value, exp)
  local text = tostring(value)
  local sign = ""
  if text:sub(1, 1) == "-" then sign = "-"; text = text:sub(2) end
  if exp >= 0 then return sign .. text .. string.rep("0", exp) end
  local places = -exp
  if #text <= places then text = string.rep("0", places - #text + 1) .. text end
  return sign .. text:sub(1, #text - places) .. "." .. text:sub(#text - places + 1)
end

local function malformed(tree, tvb, text)
  tree:add_proto_expert_info(e_malformed, text)
  return tvb:len()
end

local function dissect_message(tvb, off, tree, channel)
  local length = tvb(off, 2):le_uint()
  local mtype = tvb(off + 2, 1):uint()
  local instrument = tvb(off + 4, 2):le_uint()
  local name = TYPES[mtype] or string.format("unknown 0x%02x", mtype)
  local sub = tree:add(hf, tvb(off, length), "Message: " .. name)
  sub:add_le(f.length, tvb(off, 2))
  sub:add_le(f.mtype, tvb(off + 2, 1))
  sub:add_le(f.venue, tvb(off + 3, 1))
  sub:add_le(f.instrument, tvb(off + 4, 2))
  local flags_item = sub:add_le(f.mflags, tvb(off + 6, 2))
  if mtype == 0x42 then
    flags_item:add_le(f.snapshot, tvb(off + 6, 2))
    flags_item:add_le(f.refresh, tvb(off + 6, 2))
  end
  sub:add_le(f.exch_ns, tvb(off + 8, 8))
  sub:add_le(f.recv_ns, tvb(off + 16, 8))
  sub:add_le(f.update_id, tvb(off + 24, 8))
  local e = exps[channel * 65536 + instrument] or { -8, -8 }
  if mtype == 0x42 then
    local bid_n = tvb(off + 32, 1):uint()
    local ask_n = tvb(off + 33, 1):uint()
    sub:add(f.bid_n, tvb(off + 32, 1))
    sub:add(f.ask_n, tvb(off + 33, 1))
    if length ~= 40 + 16 * (bid_n + ask_n) then
      return malformed(sub, tvb, "B length disagrees with bid_n/ask_n")
    end
    local pos = off + 40
    for k = 1, bid_n + ask_n do
      local is_bid = k <= bid_n
      local price = tvb(pos, 8):le_int64()
      local qty = tvb(pos + 8, 8):le_int64()
      local level = sub:add(hf, tvb(pos, 16), string.format("%s %s x %s",
          is_bid and "Bid" or "Ask", decimal(price, e[1]), decimal(qty, e[2])))
      level:add(is_bid and f.bid_price or f.ask_price, tvb(pos, 8), decimal(price, e[1]))
      level:add(is_bid and f.bid_qty or f.ask_qty, tvb(pos + 8, 8), decimal(qty, e[2]))
      level:add_le(f.level_price_raw, tvb(pos, 8))
      level:add_le(f.level_qty_raw, tvb(pos + 8, 8))
      pos = pos + 16
    end
  elseif mtype == 0x54 then
    if length < 56 then return malformed(sub, tvb, "T message shorter than 56") end
    sub:add(f.price, tvb(off + 32, 8), decimal(tvb(off + 32, 8):le_int64(), e[1]))
    sub:add(f.qty, tvb(off + 40, 8), decimal(tvb(off + 40, 8):le_int64(), e[2]))
    sub:add(f.side, tvb(off + 48, 1))
  elseif mtype == 0x51 then
    if length < 64 then return malformed(sub, tvb, "Q message shorter than 64") end
    sub:add(f.q_bid_px, tvb(off + 32, 8), decimal(tvb(off + 32, 8):le_int64(), e[1]))
    sub:add(f.q_bid_qty, tvb(off + 40, 8), decimal(tvb(off + 40, 8):le_int64(), e[2]))
    sub:add(f.q_ask_px, tvb(off + 48, 8), decimal(tvb(off + 48, 8):le_int64(), e[1]))
    sub:add(f.q_ask_qty, tvb(off + 56, 8), decimal(tvb(off + 56, 8):le_int64(), e[2]))
  elseif mtype == 0x53 then
    if length < 40 then return malformed(sub, tvb, "S message shorter than 40") end
    sub:add(f.state, tvb(off + 32, 1))
  elseif mtype == 0x49 then
    if length < 64 then return malformed(sub, tvb, "I message shorter than 64") end
    sub:add(f.symbol, tvb(off + 32, 24), tvb(off + 32, 24):stringz())
    sub:add(f.price_exp, tvb(off + 56, 1))
    sub:add(f.qty_exp, tvb(off + 57, 1))
    exps[channel * 65536 + instrument] = { tvb(off + 56, 1):int(), tvb(off + 57, 1):int() }
  elseif mtype == 0x44 then
    if length < 72 then return malformed(sub, tvb, "D message shorter than 72") end
    sub:add(f.tick_size, tvb(off + 32, 8), decimal(tvb(off + 32, 8):le_int64(), e[1]))
    sub:add(f.lot_size, tvb(off + 40, 8), decimal(tvb(off + 40, 8):le_int64(), e[2]))
    sub:add(f.min_qty, tvb(off + 48, 8), decimal(tvb(off + 48, 8):le_int64(), e[2]))
    sub:add(f.contract_size, tvb(off + 56, 8), decimal(tvb(off + 56, 8):le_int64(), -8))
    sub:add(f.trading, tvb(off + 64, 1))
  end
  return nil
end

function hf.dissector(tvb, pinfo, root)
  local size = tvb:len()
  if size < 32 then return 0 end
  pinfo.cols.protocol = "HFTFEED"
  local tree = root:add(hf, tvb(0, size), "HFTFEED")
  tree:add(f.magic, tvb(0, 2))
  tree:add(f.version, tvb(2, 1))
  local flags_item = tree:add(f.flags, tvb(3, 1))
  flags_item:add(f.eos, tvb(3, 1))
  tree:add_le(f.channel, tvb(4, 2))
  tree:add_le(f.count, tvb(6, 2))
  tree:add_le(f.session, tvb(8, 4))
  tree:add_le(f.reserved, tvb(12, 4))
  tree:add_le(f.seq, tvb(16, 8))
  tree:add_le(f.send_ns, tvb(24, 8))
  local channel = tvb(4, 2):le_uint()
  local count = tvb(6, 2):le_uint()
  local flags = tvb(3, 1):uint()
  tree:add(f.heartbeat, count == 0 and flags % 2 == 0)
  pinfo.cols.info = string.format("ch %d seq %s count %d%s", channel,
                                  tostring(tvb(16, 8):le_uint64()), count,
                                  flags % 2 == 1 and " END OF SESSION" or "")
  local off = 32
  for i = 1, count do
    if off + 32 > size then return malformed(tree, tvb, "datagram ends inside a message header") end
    local length = tvb(off, 2):le_uint()
    if length < 32 or length % 8 ~= 0 or off + length > size then
      return malformed(tree, tvb, "bad message length " .. length)
    end
    if dissect_message(tvb, off, tree, channel) then return size end
    off = off + length
  end
  if off ~= size then malformed(tree, tvb, (size - off) .. " bytes of trailing garbage") end
  return size
end

local function heuristic(tvb, pinfo, root)
  if tvb:len() < 32 or tvb(0, 2):string() ~= "HF" or tvb(2, 1):uint() ~= 1 then return false end
  hf.dissector(tvb, pinfo, root)
  return true
end

hf:register_heuristic("udp", heuristic)

local registered_port = nil
function hf.prefs_changed()
  local udp = DissectorTable.get("udp.port")
  if registered_port then udp:remove(registered_port, hf) end
  registered_port = hf.prefs.port
  if registered_port ~= 0 then udp:add(registered_port, hf) end
end
DissectorTable.get("udp.port"):add(hf.prefs.port, hf)
registered_port = hf.prefs.port
