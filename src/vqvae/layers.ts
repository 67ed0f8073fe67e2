// The tokenizer's networks: the convolutional encoder and decoder and their blocks.
//
// Architecture (h = hiddenChannels), after the VQ-VAE paper's image models:
//   encoder: conv 4x4 s2 (3 -> h/2, 28 -> 14), ReLU, conv 4x4 s2 (h/2 -> h, 14 -> 7), ReLU,
//            conv 3x3 (h -> h), residual blocks, ReLU, conv 1x1 (h -> codeDim)
//   decoder: conv 3x3 (codeDim -> h), residual blocks, ReLU, convT 4x4 s2 (h -> h/2, 7 -> 14),
//            ReLU, convT 4x4 s2 (h/2 -> 3*4, 14 -> 28)
//   residual block: x + conv1x1(ReLU(conv3x3(ReLU(x)))) with residualChannels in the middle.
// With `globalContext` both add the grid mean of their 7x7 features back at every position
// (GlobalContext) before the residual blocks.

import type { Tensor } from '../engine/tensor';
import * as F from '../engine/ops';
import { Module, ModuleList, Conv2d, ConvTranspose2d } from '../nn/module';
import type { Rng } from '../nn/rng';
import { IMAGE_CHANNELS } from '../data/images';
import type { VqVaeConfig } from './config';
import { LOGITS_PER_PIXEL } from './levels';

/** x + conv1x1(ReLU(conv3x3(ReLU(x)))), shape-preserving. */
export class ResidualBlock extends Module {
  readonly conv3: Conv2d;
  readonly conv1: Conv2d;
  constructor(channels: number, residualChannels: number, rng: Rng) {
    super();
    this.conv3 = this.child('conv3', new Conv2d(channels, residualChannels, 3, rng, 1, 1));
    this.conv1 = this.child('conv1', new Conv2d(residualChannels, channels, 1, rng));
  }
  forward(x: Tensor): Tensor {
    return F.add(x, this.conv1.forward(F.relu(this.conv3.forward(F.relu(x))))); // [B, C, H, W]
  }
}

/** The `residualBlocks` blocks of width hiddenChannels that the encoder and the decoder each hold. */
function residualBlocks(c: VqVaeConfig, rng: Rng): ModuleList<ResidualBlock> {
  return new ModuleList(
    Array.from(
      { length: c.residualBlocks },
      () => new ResidualBlock(c.hiddenChannels, c.residualChannels, rng),
    ),
  );
}

/** x + conv1x1(mean of x over the grid), broadcast to every position: [B, C, H, W] -> same. */
export class GlobalContext extends Module {
  readonly proj: Conv2d;
  constructor(channels: number, rng: Rng) {
    super();
    this.proj = this.child('proj', new Conv2d(channels, channels, 1, rng));
  }
  forward(x: Tensor): Tensor {
    const pooled = F.mean(F.mean(x, 3, true), 2, true); // [B, C, 1, 1]
    return F.add(x, this.proj.forward(pooled)); // [B, C, H, W]
  }
}

/** [B, 3, 28, 28] in [-1, 1] -> z [B, codeDim, 7, 7]. */
export class Encoder extends Module {
  readonly down1: Conv2d;
  readonly down2: Conv2d;
  readonly conv: Conv2d;
  readonly res: ModuleList<ResidualBlock>;
  readonly proj: Conv2d;
  readonly context: GlobalContext | null;
  constructor(c: VqVaeConfig, rng: Rng) {
    super();
    const h = c.hiddenChannels;
    this.down1 = this.child('down1', new Conv2d(IMAGE_CHANNELS, h / 2, 4, rng, 2, 1));
    this.down2 = this.child('down2', new Conv2d(h / 2, h, 4, rng, 2, 1));
    this.conv = this.child('conv', new Conv2d(h, h, 3, rng, 1, 1));
    this.context = c.globalContext ? this.child('context', new GlobalContext(h, rng)) : null;
    this.res = this.child('res', residualBlocks(c, rng));
    this.proj = this.child('proj', new Conv2d(h, c.codeDim, 1, rng));
  }
  forward(x: Tensor): Tensor {
    let y = F.relu(this.down1.forward(x)); // [B, h/2, 14, 14]
    y = F.relu(this.down2.forward(y)); // [B, h, 7, 7]
    y = this.conv.forward(y); // [B, h, 7, 7]
    if (this.context) y = this.context.forward(y);
    for (const block of this.res.items) y = block.forward(y);
    return this.proj.forward(F.relu(y)); // [B, codeDim, 7, 7]
  }
}

/** zq [B, codeDim, 7, 7] -> logits [B, 3*4, 28, 28] (channel index = colour * 4 + level). */
export class Decoder extends Module {
  readonly conv: Conv2d;
  readonly res: ModuleList<ResidualBlock>;
  readonly up1: ConvTranspose2d;
  readonly up2: ConvTranspose2d;
  readonly context: GlobalContext | null;
  constructor(c: VqVaeConfig, rng: Rng) {
    super();
    const h = c.hiddenChannels;
    this.conv = this.child('conv', new Conv2d(c.codeDim, h, 3, rng, 1, 1));
    this.context = c.globalContext ? this.child('context', new GlobalContext(h, rng)) : null;
    this.res = this.child('res', residualBlocks(c, rng));
    this.up1 = this.child('up1', new ConvTranspose2d(h, h / 2, 4, rng, 2, 1));
    this.up2 = this.child('up2', new ConvTranspose2d(h / 2, LOGITS_PER_PIXEL, 4, rng, 2, 1));
  }
  forward(zq: Tensor): Tensor {
    let y = this.conv.forward(zq); // [B, h, 7, 7]
    if (this.context) y = this.context.forward(y);
    for (const block of this.res.items) y = block.forward(y);
    y = F.relu(this.up1.forward(F.relu(y))); // [B, h/2, 14, 14]
    return this.up2.forward(y); // [B, 12, 28, 28]
  }
}
