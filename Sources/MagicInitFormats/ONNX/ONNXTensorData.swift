import Foundation
import MagicInitCore

/// The values of an ONNX `TensorProto`, from `raw_data` (little-endian) or the typed
/// `*_data` field, and back.
enum ONNXTensorData {
    enum Failure: Error {
        case unsupported(String)
    }

    static let floatType: Int32 = 1
    static let int32Type: Int32 = 6
    static let int64Type: Int32 = 7
    static let doubleType: Int32 = 11

    static func typeName(_ type: Int32) -> String {
        let names: [Int32: String] = [0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16",
                                      6: "INT32", 7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE",
                                      12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16"]
        return names[type] ?? "type \(type)"
    }

    static func checkLocation(_ t: Onnx_TensorProto) throws(Failure) {
        if t.dataLocation == .external || !t.externalData.isEmpty {
            throw .unsupported("stored in an external data file, which MagicInit does not read; save the model with its weights inside")
        }
    }

    /// The element count of `t`'s dims, overflow-checked and at most
    /// ``ShapeInference/maxElements``.
    /// - Throws: `.unsupported` for a negative extent or a count beyond the bound.
    static func elementCount(_ t: Onnx_TensorProto) throws(Failure) -> Int {
        let dims = t.dims.map { Int($0) }
        guard let count = Tensor.checkedCount(of: dims), count <= ShapeInference.maxElements else {
            throw .unsupported("dims \(describeShape(dims)) are negative or hold more than \(ShapeInference.maxElements) elements")
        }
        return count
    }

    /// The values of a FLOAT (or DOUBLE, converted) tensor.
    static func floats(_ t: Onnx_TensorProto) throws(Failure) -> [Float] {
        try checkLocation(t)
        let count = try elementCount(t)
        let values: [Float]
        switch t.dataType {
        case floatType:
            values = t.hasRawData ? littleEndian(t.rawData, as: UInt32.self).map { Float(bitPattern: $0) } : t.floatData
        case doubleType:
            values = (t.hasRawData ? littleEndian(t.rawData, as: UInt64.self).map { Double(bitPattern: $0) } : t.doubleData).map { Float($0) }
        default:
            throw .unsupported("has type \(typeName(t.dataType)); MagicInit reads FLOAT weights")
        }
        guard values.count == count else {
            throw .unsupported("dims \(t.dims) need \(count) values, the tensor holds \(values.count)")
        }
        return values
    }

    /// The values of an INT64 or INT32 tensor (shapes, axes).
    static func ints(_ t: Onnx_TensorProto) throws(Failure) -> [Int] {
        try checkLocation(t)
        let count = try elementCount(t)
        let values: [Int]
        switch t.dataType {
        case int64Type:
            values = t.hasRawData ? littleEndian(t.rawData, as: UInt64.self).map { Int(Int64(bitPattern: $0)) } : t.int64Data.map { Int($0) }
        case int32Type:
            values = t.hasRawData ? littleEndian(t.rawData, as: UInt32.self).map { Int(Int32(bitPattern: $0)) } : t.int32Data.map { Int($0) }
        default:
            throw .unsupported("has type \(typeName(t.dataType)); expected INT64 or INT32")
        }
        guard values.count == count else {
            throw .unsupported("dims \(t.dims) need \(count) values, the tensor holds \(values.count)")
        }
        return values
    }

    /// Replaces the values of a FLOAT tensor, keeping its storage (raw or typed) and dims.
    static func setFloats(_ values: [Float], in t: inout Onnx_TensorProto) {
        if t.hasRawData {
            #if _endian(little)
            t.rawData = values.withUnsafeBytes { Data($0) }
            #else
            var data = Data(capacity: values.count * 4)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            t.rawData = data
            #endif
        } else {
            t.floatData = values
        }
    }

    private static func littleEndian<T: FixedWidthInteger>(_ data: Data, as: T.Type) -> [T] {
        let size = MemoryLayout<T>.size
        let count = data.count / size
        #if _endian(little)
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { raw in
                if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: count * size) }
            }
            initialized = count
        }
        #else
        return data.withUnsafeBytes { raw in
            (0..<count).map { T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) }
        }
        #endif
    }
}
