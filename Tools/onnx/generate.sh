#!/usr/bin/env bash
# Regenerates Sources/ONNXExport/onnx.pb.swift from Tools/onnx/onnx.proto (copied from the onnx
# Python package, Apache-2.0) with protoc (Debian: protobuf-compiler) and swift-protobuf's
# protoc-gen-swift 1.39.0, built here in a scratch package. Slow (the plugin builds in ~2 minutes);
# the generated file is committed, so builds never need this.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v protoc >/dev/null || { echo "needs protoc: apt-get install -y protobuf-compiler" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/Sources/dummy"
cat >"$scratch/Package.swift" <<'PKG'
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
  name: "plugin", dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0")],
  targets: [.executableTarget(name: "dummy", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")])])
PKG
echo 'import SwiftProtobuf' >"$scratch/Sources/dummy/main.swift"
(cd "$scratch" && swift build -c release --product protoc-gen-swift >/dev/null)
protoc --plugin=protoc-gen-swift="$scratch/.build/release/protoc-gen-swift" --swift_opt=Visibility=Public \
  --swift_out=Sources/ONNXExport -I Tools/onnx Tools/onnx/onnx.proto
echo "wrote Sources/ONNXExport/onnx.pb.swift"
