module github.com/kiln-gpu/kiln/examples/go-saxpy-service

go 1.22

require github.com/kiln-gpu/kiln/bindings/go v0.0.0

replace github.com/kiln-gpu/kiln/bindings/go => ../../bindings/go
