// Package gen holds code generated from the protobuf sources under proto/
// by buf with the protoc-gen-go and protoc-gen-connect-go plugins; the
// admin API of package httpapi/admin is in gen/mimi/admin/v1 (package
// adminv1) and its Connect RPC bindings in gen/mimi/admin/v1/adminv1connect;
// the client API of package httpapi/clientapi is in gen/mimi/client/v1
// (package clientv1) and gen/mimi/client/v1/clientv1connect.
//
// Never edit the generated files: change proto/ and run, from the
// repository root,
//
//	go run ./tools/protogen
//
// (or `go generate ./gen/`), which pins buf and both plugins and records
// the hashes of its inputs and outputs in gen/protogen.sum; `go test
// ./tools/protogen/` fails when they drift.
package gen

//go:generate go run ../tools/protogen
