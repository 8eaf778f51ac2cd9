// memlab (a devDependency: the independent implementation the analysis tests compare
// against) pulls in puppeteer, whose install step downloads a browser. leakguard's tests
// never start a browser; skip the download so `npm install` works without it.
module.exports = { skipDownload: true }
