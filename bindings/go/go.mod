module github.com/kiln-gpu/kiln/bindings/go

go 1.22
