/// A row-major float32 blob seen as `(N, C, L)`: N images, C channels, and L = the product of
/// the remaining (spatial) extents, so `(N, C, H, W)` has `L = H·W` and `(N, C)` has `L = 1`.
/// Channel c of image n is the contiguous run `[(n·C + c)·L, (n·C + c + 1)·L)`.
struct BlobLayout {
    let images: Int
    let channels: Int
    let spatial: Int

    /// - Precondition: `shape` has rank ≥ 2, no negative extent, and `shape.reduce(1, *) == count`.
    init(shape: [Int], count: Int, function: StaticString = #function) {
        precondition(shape.count >= 2, "\(function): a blob needs shape (N, C, …), got \(shape)")
        precondition(shape.allSatisfy { $0 >= 0 }, "\(function): negative extent in \(shape)")
        precondition(shape.reduce(1, *) == count,
                     "\(function): shape \(shape) needs \(shape.reduce(1, *)) values, got \(count)")
        images = shape[0]
        channels = shape[1]
        spatial = shape.dropFirst(2).reduce(1, *)
    }

    /// Values per channel in the blob, `N·L`.
    var valuesPerChannel: Int { images * spatial }
}
