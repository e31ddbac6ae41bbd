import CKernels
import TensorCore

// The cell table: everything that differs between cell kinds, in one entry per kind. The
// layer sweeps (RecurrentLayer), the batch-1 stepper (LanguageModelStepper) and the weight
// gradients call the entry; they never ask which kind they run. A new cell is a new entry
// (its blocks, forward step and backward step), its naive twin in RecurrentKernels.swift and
// its fixtures.
//
// How the cells of issue 17 fit in:
// - the LSTM projection (h = W_hr·(o⊙tanh c), `RecurrentLayer.projectionSize`) is the sweep's:
//   the cell writes o⊙tanh(c) and the sweep multiplies it by W_hr (`RecurrentWeights.projection`);
// - the layer-normalised cells (`layerNorm`) normalise gh inside their step between `product`
//   (which then leaves b_hh out) and the gate math; the sweep normalises gx once for all steps;
// - peepholes: the entry's pointwise kernels read c and the diagonal weights;
// - cells trained in parallel over time (minGRU/minLSTM): no blocks, so the sweep's one
//   product over all T·B rows is all the matrix work; its time loop is then a pointwise scan
//   (no product per step), split over rows like every other cell's;
// - a gate epilogue fused into the recurrent product: `product` is the single place where
//   bias + GEMM are issued, so a fused kernel replaces it there.
// A cell's parameters beyond PyTorch's four per direction (gains, peepholes) are
// `RecurrentWeights.cellParameters`, named by the entry.
//
// Legend: B = batch rows of this thread, H = hidden, G = gate blocks, S = saved slots · H.
// gx [B, G*H] = x·W_ihᵀ + b_ih (all steps at once); gh [B, G*H] = the recurrent product of
// this step (bias included); saved [B, S] = what the backward needs.

/// What a block of the recurrent product multiplies.
package enum RecurrentOperand: Sendable, Equatable {
  /// The previous hidden state h `[B, H]`.
  case hidden
  /// Saved slot k of this step `[B, H]` within `saved` (reset-before GRU: r ⊙ h).
  case saved(slot: Int)
}

/// Gate rows `gates` of W_hh (`[gates.count * H, H]`) times an operand: one product per step.
/// Cells whose recurrent product is not a single matrix product list several blocks (the
/// reset-before GRU; an LSTM projection would add one whose operand is the projected state).
package struct RecurrentBlock: Sendable, Equatable {
  package let gates: Range<Int>
  package let operand: RecurrentOperand
}

/// One time step of the forward pass, for `rows` batch rows.
package struct ForwardStep {
  package let gx: UnsafePointer<Float>  // [rows, G*H]
  package let gh: UnsafeMutablePointer<Float>  // [rows, G*H], written by `product`
  package let hPrev: UnsafePointer<Float>  // [rows, H]
  package let hNext: UnsafeMutablePointer<Float>  // [rows, H]
  package let cPrev: UnsafePointer<Float>?  // [rows, H], cells with a cell state
  package let cNext: UnsafeMutablePointer<Float>?
  package let saved: UnsafeMutablePointer<Float>  // [rows, S]
  package let rows: Int
  package let hidden: Int
  /// The cell's own parameters `[P*H]` (peepholes), nil for cells without.
  package var parameters: UnsafePointer<Float>? = nil
  /// `b_hh` `[G*H]`, for the layer-normalised cells, whose `product` leaves it out (they add it
  /// after normalising).
  package var recurrentBias: UnsafePointer<Float>? = nil
}

/// One time step of the backward pass. `dh` holds ∂/∂h' on entry; the step writes dgx, dgh
/// and dhPrev (the direct path; the caller then adds dgh·W_hh for `.hidden` blocks); `dc`
/// holds ∂/∂c' on entry and ∂/∂c on exit.
package struct BackwardStep {
  package let saved: UnsafePointer<Float>
  package let hPrev: UnsafePointer<Float>
  package let hNext: UnsafePointer<Float>
  package let cPrev: UnsafePointer<Float>?
  package let dh: UnsafePointer<Float>
  package let dc: UnsafeMutablePointer<Float>?
  package let dgx: UnsafeMutablePointer<Float>
  package let dgh: UnsafeMutablePointer<Float>
  package let dhPrev: UnsafeMutablePointer<Float>
  /// `[rows, H]` of scratch for cells whose backward needs a product of its own.
  package let scratch: UnsafeMutablePointer<Float>
  package let rows: Int
  package let hidden: Int
  /// The cell's own parameters `[P*H]`, nil for cells without.
  package var parameters: UnsafePointer<Float>? = nil
  /// This step's gate pre-activations from x `[rows, G*H]` (the forward's `gx`), for cells that
  /// recompute their gates instead of saving them (the min cells).
  package var gx: UnsafePointer<Float>? = nil
  /// Layer-normalised cells: ∂/∂(the normalised recurrent pre-activations, b_hh included)
  /// `[rows, G*H]`, which b_hh's gradient sums; `dgh` then holds ∂/∂(h·W_hhᵀ) for W_hh and h.
  package var dghPost: UnsafeMutablePointer<Float>? = nil
  /// Each row's gradient of the cell's own parameters `[rows, P*H]`, written (not added) by the
  /// step; the sweep sums the rows over all steps, as it does for the biases.
  package var parameterGradient: UnsafeMutablePointer<Float>? = nil
}

/// Computes block `index` of the recurrent product into `step.gh`: bias plus operand·W_blockᵀ.
/// - Parameters: operand `[rows, H]` with row stride `lda`.
package typealias ForwardProduct = (_ index: Int, _ operand: UnsafePointer<Float>, _ lda: Int) -> Void
/// `into[rows, H] = beta·into + dgh[:, block]·W_block` for block `index` (`dgh` rows of G*H).
package typealias BackwardProduct = (
  _ index: Int, _ dgh: UnsafePointer<Float>, _ into: UnsafeMutablePointer<Float>, _ beta: Float
) -> Void

/// The kernels of one cell kind.
package struct CellKernels: Sendable {
  /// Gate blocks G in the weight matrices (`[G*H, in]`).
  package let gateCount: Int
  /// H-wide slots per step the forward saves for the backward.
  package let savedSlots: Int
  package let hasCellState: Bool
  /// The recurrent product's blocks, in gate order.
  package let blocks: [RecurrentBlock]
  /// H-wide blocks of the cell's own parameters (peepholes: 3), 0 for none, and their name.
  package var parameterBlocks = 0
  package var parameterName = ""
  /// One step forward: calls `product` for each block, then the fused pointwise kernel.
  package let forward: @Sendable (ForwardStep, ForwardProduct) -> Void
  /// One step backward: the fused pointwise backward, and the products of non-`.hidden` blocks.
  package let backward: @Sendable (BackwardStep, BackwardProduct) -> Void
  /// The step the batch-1 stepper takes (generation, serving), where it is computed another
  /// way than in the layer's sweep (the min cells: linear space); nil: `forward`.
  package var sequentialForward: (@Sendable (ForwardStep, ForwardProduct) -> Void)? = nil
  /// The layer-normalised cells: `product` computes h·W_hhᵀ without b_hh (the cell normalises it
  /// and adds b_hh), the sweep normalises x·W_ihᵀ before adding b_ih with the gains' first G·H
  /// values (γx), and the backward steps write `dghPost`.
  package var layerNorm = false
  /// The cell's own parameters' initial values for H units (nil: drawn as the weights are).
  package var initialParameters: (@Sendable (Int) -> [Float])? = nil

  /// Blocks whose operand is h: their products add dgh·W_hh into dhPrev after `backward`.
  package var hiddenBlocks: [Int] { blocks.indices.filter { blocks[$0].operand == .hidden } }
}

extension CellKind {
  /// This kind's entry of the cell table.
  package var kernels: CellKernels {
    switch self {
    case .rnnTanh: CellKernels.elmanTanh
    case .rnnRelu: CellKernels.elmanRelu
    case .lstm: CellKernels.lstm
    case .lstmPeephole: CellKernels.lstmPeephole
    case .gru: CellKernels.gru
    case .gruResetBefore: CellKernels.gruResetBefore
    case .gruLN: CellKernels.gruLN
    case .lstmLN: CellKernels.lstmLN
    case .minGRU: CellKernels.minGRU
    case .minLSTM: CellKernels.minLSTM
    }
  }
}

extension CellKernels {
  static let elmanTanh = elman(relu: false)
  static let elmanRelu = elman(relu: true)

  /// Elman RNN: `h' = act(gx + gh)`; nothing saved but h' (the next state) itself.
  static func elman(relu: Bool) -> CellKernels {
    let flag: Int32 = relu ? 1 : 0
    return CellKernels(
      gateCount: 1, savedSlots: 0, hasCellState: false, blocks: [RecurrentBlock(gates: 0..<1, operand: .hidden)],
      forward: { s, product in
        product(0, s.hPrev, s.hidden)
        rc_rnn_forward(flag, s.gx, s.gh, s.hNext, s.rows * s.hidden)
      },
      backward: { s, _ in
        rc_rnn_backward(flag, s.hNext, s.dh, s.dgx, s.dgh, s.dhPrev, s.rows * s.hidden)
      })
  }

  /// LSTM, gates i|f|g|o: c' = f⊙c + i⊙g, h' = o⊙tanh(c'). Saves i, f, g, o, tanh(c').
  static let lstm = CellKernels(
    gateCount: 4, savedSlots: 5, hasCellState: true, blocks: [RecurrentBlock(gates: 0..<4, operand: .hidden)],
    forward: { s, product in
      product(0, s.hPrev, s.hidden)
      rc_lstm_forward(s.gx, s.gh, s.cPrev!, s.hNext, s.cNext!, s.saved, s.rows, s.hidden)
    },
    backward: { s, _ in
      rc_lstm_backward(s.saved, s.cPrev!, s.dh, s.dc!, s.dgx, s.dgh, s.dhPrev, s.rows, s.hidden)
    })

  /// Peephole LSTM, gates i|f|g|o, peepholes p = p_i|p_f|p_o: i and f see c, o sees c'.
  /// Saves i, f, g, o, tanh(c'), c'.
  static let lstmPeephole: CellKernels = {
    var k = CellKernels(
      gateCount: 4, savedSlots: 6, hasCellState: true, blocks: [RecurrentBlock(gates: 0..<4, operand: .hidden)],
      forward: { s, product in
        product(0, s.hPrev, s.hidden)
        rc_lstm_peephole_forward(s.gx, s.gh, s.cPrev!, s.parameters!, s.hNext, s.cNext!, s.saved, s.rows, s.hidden)
      },
      backward: { s, _ in
        rc_lstm_peephole_backward(
          s.saved, s.cPrev!, s.parameters!, s.dh, s.dc!, s.dgx, s.dgh, s.dhPrev, s.parameterGradient!, s.rows, s.hidden)
      })
    (k.parameterBlocks, k.parameterName) = (3, "peephole")
    return k
  }()

  /// GRU, reset after the recurrent product, gates r|z|n: n = tanh(gx_n + r⊙gh_n),
  /// h' = (1-z)⊙n + z⊙h. Saves r, z, n, gh_n.
  static let gru = CellKernels(
    gateCount: 3, savedSlots: 4, hasCellState: false, blocks: [RecurrentBlock(gates: 0..<3, operand: .hidden)],
    forward: { s, product in
      product(0, s.hPrev, s.hidden)
      rc_gru_forward(s.gx, s.gh, s.hPrev, s.hNext, s.saved, s.rows, s.hidden)
    },
    backward: { s, _ in
      rc_gru_backward(s.saved, s.hPrev, s.dh, s.dgx, s.dgh, s.dhPrev, s.rows, s.hidden)
    })

  /// GRU, reset before the recurrent product (Cho et al. 2014): r and z from h·W_hrzᵀ, then
  /// n = tanh(gx_n + (r⊙h)·W_hnᵀ + b_hn). Saves r, z, n, r⊙h; two blocks: r|z take h, n takes
  /// saved slot 3.
  static let gruResetBefore = CellKernels(
    gateCount: 3, savedSlots: 4, hasCellState: false,
    blocks: [RecurrentBlock(gates: 0..<2, operand: .hidden), RecurrentBlock(gates: 2..<3, operand: .saved(slot: 3))],
    forward: { s, product in
      let H = s.hidden
      product(0, s.hPrev, H)
      rc_gru_reset_before_gates(s.gx, s.gh, s.hPrev, s.saved, s.rows, H)
      product(1, s.saved + 3 * H, 4 * H)
      rc_gru_reset_before_output(s.gx, s.gh, s.hPrev, s.hNext, s.saved, s.rows, H)
    },
    backward: { s, product in
      let H = s.hidden
      gruResetBeforeBackwardOutput(
        saved: s.saved, hPrev: s.hPrev, dh: s.dh, dgx: s.dgx, dgh: s.dgh, dhPrev: s.dhPrev, B: s.rows, H: H)
      product(1, s.dgh, s.scratch, 0)  // d(r⊙h) = dgh_n · W_hn
      gruResetBeforeBackwardGates(
        saved: s.saved, hPrev: s.hPrev, dRH: s.scratch, dgx: s.dgx, dgh: s.dgh, dhPrev: s.dhPrev, B: s.rows, H: H)
    })

  static let minGRU = min(lstm: false)
  static let minLSTM = min(lstm: true)

  /// minGRU (gates z|h) or minLSTM (f|i|h): no recurrent product, nothing saved (the backward
  /// recomputes the gates from gx, which the sweep keeps). The sweep's step is the paper's
  /// log-space form (`rc_min_forward`); the stepper's is the linear form (`minStep`).
  static func min(lstm: Bool) -> CellKernels {
    let flag: Int32 = lstm ? 1 : 0
    var k = CellKernels(
      gateCount: lstm ? 3 : 2, savedSlots: 0, hasCellState: false, blocks: [],
      forward: { s, _ in rc_min_forward(flag, s.gx, s.hPrev, s.hNext, s.rows, s.hidden) },
      backward: { s, _ in rc_min_backward(flag, s.gx!, s.hPrev, s.dh, s.dgx, s.dhPrev, s.rows, s.hidden) })
    k.sequentialForward = { s, _ in minStep(lstm: lstm, gx: s.gx, hPrev: s.hPrev, hNext: s.hNext, B: s.rows, H: s.hidden) }
    return k
  }

  /// haste's LayerNormGRU: the GRU step on normalised pre-activations (`gruLayerNormForward`).
  static let gruLN: CellKernels = {
    var k = CellKernels(
      gateCount: 3, savedSlots: 8, hasCellState: false, blocks: [RecurrentBlock(gates: 0..<3, operand: .hidden)],
      forward: { s, product in
        product(0, s.hPrev, s.hidden)
        gruLayerNormForward(
          gx: s.gx, gh: s.gh, hPrev: s.hPrev, ldh: s.hidden, hNext: s.hNext, saved: s.saved, bias: s.recurrentBias!,
          gains: s.parameters!, B: s.rows, H: s.hidden)
      },
      backward: { s, _ in
        gruLayerNormBackward(
          saved: s.saved, hPrev: s.hPrev, ldh: s.hidden, dh: s.dh, dgx: s.dgx, dghPost: s.dghPost!, dgh: s.dgh,
          dhPrev: s.dhPrev, gains: s.parameters!, dGains: s.parameterGradient!, B: s.rows, H: s.hidden)
      })
    (k.parameterBlocks, k.parameterName, k.layerNorm) = (6, "layer_norm", true)
    k.initialParameters = { H in [Float](repeating: 1, count: 6 * H) }
    return k
  }()

  /// haste's LayerNormLSTM (`lstmLayerNormForward`).
  static let lstmLN: CellKernels = {
    var k = CellKernels(
      gateCount: 4, savedSlots: 12, hasCellState: true, blocks: [RecurrentBlock(gates: 0..<4, operand: .hidden)],
      forward: { s, product in
        product(0, s.hPrev, s.hidden)
        lstmLayerNormForward(
          gx: s.gx, gh: s.gh, cPrev: s.cPrev!, hNext: s.hNext, cNext: s.cNext!, saved: s.saved,
          bias: s.recurrentBias!, gains: s.parameters!, B: s.rows, H: s.hidden)
      },
      backward: { s, _ in
        lstmLayerNormBackward(
          saved: s.saved, cPrev: s.cPrev!, dh: s.dh, dc: s.dc!, dgx: s.dgx, dghPost: s.dghPost!, dgh: s.dgh,
          dhPrev: s.dhPrev, gains: s.parameters!, dGains: s.parameterGradient!, B: s.rows, H: s.hidden)
      })
    (k.parameterBlocks, k.parameterName, k.layerNorm) = (10, "layer_norm", true)
    k.initialParameters = { H in [Float](repeating: 1, count: 9 * H) + [Float](repeating: 0, count: H) }
    return k
  }()
}
