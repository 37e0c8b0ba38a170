#!/usr/bin/env bash
# The broker examples, small: the IoT gateway through its own mosquitto broker
# (link up, down, back), and the trading daemon through librdkafka's mock
# cluster. Each checks what its consumer received and exits non-zero if
# anything is missing or out of order.
set -euo pipefail
run="$BUILD_DIR/examples-run"
rm -rf "$run"
if [ -x "$BUILD_DIR/examples/iot_gateway/jaiminho-iot-gateway" ]; then
  "$BUILD_DIR/examples/iot_gateway/jaiminho-iot-gateway" --db "$run/iot-gateway.db" --readings 600
fi
if [ -x "$BUILD_DIR/examples/trading_daemon/jaiminho-trading-daemon" ]; then
  "$BUILD_DIR/examples/trading_daemon/jaiminho-trading-daemon" --db "$run/trading.db" --orders 2000 | grep -v '^#\|^jaiminho_'
fi
